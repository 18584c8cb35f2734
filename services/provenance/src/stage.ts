// The provenance stage: the perceptual hashes of the whole image, its near duplicates among the
// tenant's earlier analyses, and the facts its header states (editing software, content
// credentials). One decode, shared with face detection when both run in one process.
import { create } from '@bufbuild/protobuf';
import { loadOriginal, nextMeta, stageWiring, ConsumerGroup, type DecodedImageCache, type ImageLimits, type ObjectStore, type StageDefinition } from '@tampertrace/shared';
import { ProvenanceSchema, RelatedAnalysisSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ImageIngestedSchema, ProvenanceCheckedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { headerFacts } from './header.ts';
import { hashHex, perceptualHash } from './phash.ts';
import { HashKind, type HashStore } from './store.ts';

export const PROVENANCE = ConsumerGroup.provenance;
/** The share cut from each side for the centre hash. */
export const CENTRE_INSET = 0.05;

export function provenanceStage(deps: {
  store: ObjectStore;
  hashes: Pick<HashStore, 'add' | 'nearest'>;
  limits: ImageLimits;
  decoded?: DecodedImageCache;
}): StageDefinition<typeof ImageIngestedSchema, typeof ProvenanceCheckedSchema> {
  return {
    ...stageWiring('provenance', ImageIngestedSchema, ProvenanceCheckedSchema),
    async handle(event) {
      const meta = nextMeta(event.meta!, Stage.PROVENANCE, PROVENANCE);
      const ref = event.original!;
      const bytes = await deps.store.get(ref.bucket, ref.key);
      const rgb = await loadOriginal(deps.store, ref, deps.limits, deps.decoded, bytes);
      const [whole, centre] = await Promise.all([perceptualHash(rgb), perceptualHash(rgb, CENTRE_INSET)]);
      const related = await deps.hashes.nearest(meta.tenantId, meta.analysisId, [whole.hash, centre.hash], [whole.mirrored, centre.mirrored]);
      await deps.hashes.add({ tenantId: meta.tenantId, analysisId: meta.analysisId, submittedAt: meta.submittedAt, sourceName: meta.sourceName }, [
        { kind: HashKind.WHOLE, hash: whole.hash },
        { kind: HashKind.CENTRE, hash: centre.hash },
      ]);
      const facts = headerFacts(bytes);
      return create(ProvenanceCheckedSchema, {
        meta,
        original: event.original,
        image: event.image,
        provenance: create(ProvenanceSchema, {
          perceptualHash: hashHex(whole.hash),
          related: related.map((m) =>
            create(RelatedAnalysisSchema, {
              analysisId: m.analysisId,
              hammingDistance: m.distance,
              mirrored: m.mirrored,
              status: m.status,
              verdict: m.verdict,
              maxForgeryScore: m.maxForgeryScore,
              submittedAt: m.submittedAt,
              sourceName: m.sourceName,
            }),
          ),
          editingSoftware: facts.editingSoftware,
          c2paManifestPresent: facts.c2paManifestPresent,
        }),
      });
    },
  };
}
