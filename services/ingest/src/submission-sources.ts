// Where a submission's bytes come from: the request itself, an object in the tenant's storage,
// or an https URL fetched under the outbound-request guard (net-guard.ts). One place, used by
// Submit, SubmitBatch, the HTTP endpoint and the submissions topic alike.
import { InvalidInputError, type Config } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { SubmitRequest } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { checkUrl, type NetPolicy } from './net-guard.ts';
import type { Submission, SubmissionResult } from './submission.ts';
import type { Tenant } from './tenants.ts';
import { fetchImageUrl } from './url-fetch.ts';

export class SubmitSources {
  readonly policy: NetPolicy;

  constructor(
    private readonly submission: Submission,
    private readonly cfg: Config,
  ) {
    this.policy = { allowHttp: cfg.TAMPERTRACE_URL_ALLOW_HTTP, allowPrivate: cfg.TAMPERTRACE_URL_ALLOW_PRIVATE };
  }

  /**
   * `submittedBy` names a submitter other than the caller's API key (the submissions topic); such
   * a submission is not held to the tenant's in-flight cap, which is for API callers (the topic
   * is paced by its consumer).
   */
  async submit(req: SubmitRequest, tenant: Tenant, signal?: AbortSignal, submittedBy?: string): Promise<SubmissionResult> {
    if (req.webhookUrl) {
      // Checked now for its form, so a bad one is refused to the caller; its addresses are
      // checked again when the result is delivered (DNS may change in between).
      checkUrl(req.webhookUrl, this.policy);
    }
    const opts = this.optionsOf(req, tenant, signal, submittedBy);
    switch (req.source.case) {
      case 'content':
        return this.submission.submit(req.source.value, opts);
      case 'object':
        return this.submission.submitObject(req.source.value, opts);
      case 'url': {
        const bytes = await fetchImageUrl(req.source.value, {
          ...this.policy,
          maxBytes: this.cfg.TAMPERTRACE_MAX_INPUT_BYTES,
          timeoutMs: this.cfg.TAMPERTRACE_URL_TIMEOUT_MS,
          signal,
        });
        return this.submission.submit(bytes, { ...opts, sourceName: opts.sourceName || req.source.value.slice(0, 200) });
      }
      default:
        throw new InvalidInputError(ErrorCode.EMPTY_INPUT, 'no image: set one of content, object or url');
    }
  }

  /**
   * A submission over the size limit that the caller hashed as it streamed past (a raw HTTP
   * body): refused with its REJECTED analysis, like the same bytes sent any other way.
   */
  submitTooLarge(contentSha256: string, sizeBytes: number, req: Pick<SubmitRequest, 'sourceName' | 'reanalyze'>, tenant: Tenant, signal?: AbortSignal): Promise<SubmissionResult> {
    return this.submission.submitTooLarge(contentSha256, sizeBytes, this.optionsOf({ ...req, webhookUrl: '' }, tenant, signal));
  }

  private optionsOf(req: Pick<SubmitRequest, 'sourceName' | 'reanalyze' | 'webhookUrl'>, tenant: Tenant, signal?: AbortSignal, submittedBy?: string) {
    return {
      tenantId: tenant.tenantId,
      sourceName: req.sourceName.slice(0, 200),
      submittedBy: submittedBy ?? (tenant.keyId ? `key:${tenant.keyId}` : undefined),
      dedupe: !req.reanalyze,
      maxInFlight: submittedBy ? undefined : tenant.maxInFlight,
      webhookUrl: req.webhookUrl || undefined,
      signal,
    };
  }
}

