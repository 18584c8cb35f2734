// Secrets of a single-machine install, kept under $TAMPERTRACE_HOME with owner-only permissions:
// the API-key pepper (when TAMPERTRACE_API_KEY_PEPPER is unset) and the default tenant's key.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TenantError, type TenantStore } from '@tampertrace/ingest/tenants';

async function readOrCreate(file: string, make: () => Promise<string>): Promise<{ value: string; created: boolean }> {
  try {
    return { value: (await readFile(file, 'utf8')).trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = await make();
  // 'wx': two processes starting together must not both write (the loser reads the winner's).
  try {
    await writeFile(file, value + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { value: (await readFile(file, 'utf8')).trim(), created: false };
    throw err;
  }
  return { value, created: true };
}

export async function localPepper(home: string): Promise<string> {
  return (await readOrCreate(path.join(home, 'secrets', 'pepper'), async () => randomBytes(32).toString('base64url'))).value;
}

/** An API key of `tenant`, from `keyFile` or new (creating the tenant when it does not exist). */
export async function ensureTenantKey(tenants: TenantStore, tenant: string, keyFile: string): Promise<{ apiKey: string; created: boolean }> {
  const { value, created } = await readOrCreate(keyFile, async () => {
    if (await tenants.get(tenant)) return (await tenants.addKey(tenant)).apiKey;
    try {
      return (await tenants.create(tenant)).apiKey;
    } catch (err) {
      // Created a moment ago by another process.
      if (err instanceof TenantError && (await tenants.get(tenant))) return (await tenants.addKey(tenant)).apiKey;
      throw err;
    }
  });
  return { apiKey: value, created };
}
