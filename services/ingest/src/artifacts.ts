// A tenant's artefacts (original, mask, heatmap, overlay): their bytes on request (GetArtifact),
// the overlay rendered on first request under the renderer's bounds, and fresh presigned URLs in
// every analysis the API answers with.
import { limitsOf, presignRefs, type Config, type DecodedImageCache, type ObjectStore } from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import type { ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ArtifactKind } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { OverlayRenderer } from '@tampertrace/shared/overlay';
import type { AnalysesStore } from './analyses.ts';

export interface ArtifactsDeps {
  cfg: Config;
  store: ObjectStore;
  /** Shared with the stages when they run in this process, so an overlay does not decode again. */
  decoded?: DecodedImageCache;
}

export class Artifacts {
  readonly store: ObjectStore;
  /** Overlays rendered on first request, bounded (one render per overlay, so many at once, a pixel cap). */
  readonly overlays: OverlayRenderer;

  constructor(
    private readonly deps: ArtifactsDeps,
    private readonly analyses: AnalysesStore,
  ) {
    this.store = deps.store;
    this.overlays = new OverlayRenderer(
      deps.store,
      limitsOf(deps.cfg),
      { maxPixels: deps.cfg.TAMPERTRACE_OVERLAY_MAX_PIXELS, renders: deps.cfg.TAMPERTRACE_OVERLAY_RENDERS },
      deps.decoded,
    );
  }

  /** The overlay PNG's ref, rendered and stored on first request. */
  overlay(a: Analysis): Promise<ObjectRef | undefined> {
    return this.overlays.overlayOf(a);
  }

  /** One artefact of a tenant's analysis with its bytes, or undefined when there is none. */
  async artifact(tenantId: string, analysisId: string, kind: ArtifactKind): Promise<{ ref: ObjectRef; content: Buffer } | undefined> {
    const a = await this.analyses.get(tenantId, analysisId);
    if (!a?.artifacts) return undefined;
    const ref =
      kind === ArtifactKind.OVERLAY
        ? await this.overlay(a)
        : { [ArtifactKind.ORIGINAL]: a.artifacts.original, [ArtifactKind.MASK]: a.artifacts.mask, [ArtifactKind.HEATMAP]: a.artifacts.heatmap }[kind as number];
    if (!ref?.key) return undefined;
    return { ref, content: await this.store.get(ref.bucket, ref.key) };
  }

  /** The analysis with fresh presigned URLs for its artefacts, where the store can make them (S3). */
  async withUrls(a: Analysis): Promise<Analysis> {
    const presign = this.store.presignedGetUrl?.bind(this.store);
    if (!presign || !a.artifacts) return a;
    const ttl = this.deps.cfg.TAMPERTRACE_PRESIGN_TTL_S;
    await presignRefs(presign, [a.artifacts.original, a.artifacts.mask, a.artifacts.heatmap, a.artifacts.overlay], ttl);
    return a;
  }
}
