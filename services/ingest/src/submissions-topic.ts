// The submissions topic (Topic.submissions): a platform's stream of SubmitRequests feeds the
// pipeline without calling the API. Each message proves its tenant with an HMAC made with the
// tenant's signing secret; anything that cannot be accepted goes to this consumer's dead-letter
// topic with its reason, and the stream goes on. Replays are harmless: the same bytes of one
// tenant deduplicate to the existing analysis.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { ConsumerGroup, Header, Topic, classify, codeName, deadLetter, sha256Hex, type BusMessage, type EventBus, type Logger, type Subscription } from '@tampertrace/shared';
import { SubmitRequestSchema, type SubmitRequest } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import type { SubmitSources } from './submission-sources.ts';
import type { TenantStore } from './tenants.ts';

export const SUBMISSIONS_GROUP = ConsumerGroup.ingestSubmissions;

/** The tt-signature value for a submission (for producers, and tests). */
export function submissionSignature(tenant: string, value: Uint8Array, signingSecret: string): string {
  return createHmac('sha256', signingSecret).update(`${tenant}.${sha256Hex(value)}`).digest('hex');
}

export async function consumeSubmissions(deps: { bus: EventBus; tenants: TenantStore; sources: SubmitSources; log: Logger }): Promise<Subscription> {
  const { bus, tenants, sources, log } = deps;
  // `tenant`: the one the signature proved, once it has; without it the dead letter (and its
  // audit record) belongs to no tenant, whatever tt-tenant claims (operators see it unattributed).
  const refuse = async (msg: BusMessage, code: string, reason: string, tenant?: string) => {
    log.warn({ key: msg.key, code, tenant: tenant ?? null, claimedTenant: tenant ? undefined : msg.headers[Header.tenant] }, 'dead-lettering a submission');
    await deadLetter(bus, msg, SUBMISSIONS_GROUP, code, reason, tenant);
  };
  return bus.subscribe({
    group: SUBMISSIONS_GROUP,
    topics: [Topic.submissions],
    handler: async (msg) => {
      const tenantId = msg.headers[Header.tenant] ?? '';
      const tenant = tenantId ? await tenants.get(tenantId) : undefined;
      const given = Buffer.from(msg.headers[Header.submissionSignature] ?? '', 'hex');
      const want = tenant ? Buffer.from(submissionSignature(tenantId, msg.value, tenant.signingSecret.toString('base64url')), 'hex') : Buffer.alloc(32);
      // Unknown tenant and bad signature are one answer, so the topic cannot probe tenant names.
      if (!tenant || given.length !== want.length || !timingSafeEqual(given, want)) return refuse(msg, 'UNAUTHENTICATED', 'no valid tt-tenant / tt-signature');
      let req: SubmitRequest;
      try {
        req = fromBinary(SubmitRequestSchema, msg.value);
      } catch (err) {
        return refuse(msg, 'INVALID_MESSAGE', `not a SubmitRequest: ${(err as Error).message}`, tenantId);
      }
      try {
        await sources.submit(req, tenant, undefined, `stream:${tenantId}`);
      } catch (err) {
        const e = classify(err);
        // An outage is waited out (the message comes back). Anything else, a bug included, is
        // dead-lettered: one message must never hold up the stream behind it.
        if (e.errorClass === 'retriable') throw e;
        if (e.errorClass === 'internal') log.error({ key: msg.key, err: e.message }, 'submission failed');
        await refuse(msg, codeName(e.code), e.message, tenantId);
      }
    },
  });
}
