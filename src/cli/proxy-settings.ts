/**
 * The `proxy` setting: a list of cached upstreams in the file, or `PREFIX=URL[,PREFIX=URL…]` from
 * the flag (repeatable) or PORTFOLIO_PROXY (anonymous upstreams, default TTL and timeout).
 */
import { z } from 'zod';
import { RegistryError } from '../core/errors.js';
import { parseRepositoryName } from '../core/names.js';
import { PROXY_DEFAULTS, type UpstreamConfig } from '../proxy/config.js';
import { compilePatterns } from '../proxy/patterns.js';

function checkPrefix(prefix: string, ctx: z.RefinementCtx): void {
  try {
    parseRepositoryName(prefix);
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    ctx.addIssue({ code: 'custom', message: `prefix ${JSON.stringify(prefix)} is not a repository name prefix (docker.io, cache/ghcr)` });
  }
}

function checkUrl(url: string, ctx: z.RefinementCtx): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // reported below
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.search || parsed.hash) {
    ctx.addIssue({ code: 'custom', message: `expected an http(s) URL of a registry, got ${JSON.stringify(url)}` });
  }
}

const trimUrl = (url: string) => url.replace(/\/+$/, '').replace(/\/v2$/, '');

/** `PREFIX=URL,PREFIX=URL` (the flag and environment form) as entries of the file's form. */
function fromText(text: string, ctx: z.RefinementCtx): { prefix: string; url: string }[] {
  const out: { prefix: string; url: string }[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) {
      ctx.addIssue({ code: 'custom', message: `expected PREFIX=URL, got ${JSON.stringify(item)}` });
      continue;
    }
    out.push({ prefix: item.slice(0, eq), url: item.slice(eq + 1) });
  }
  return out;
}

/** `secret` and `duration` are the table's own value schemas (passed in: settings.ts imports this module). */
export function proxySchema(secret: z.ZodType<string, unknown>, duration: z.ZodType<number, unknown>): z.ZodType<UpstreamConfig[], unknown> {
  const entry = z
    .strictObject({
      prefix: z.string({ error: 'expected a repository prefix' }),
      url: z.string({ error: 'expected a URL' }),
      credentials: z.strictObject({ username: z.string({ error: 'expected a user name' }), password: secret }).optional(),
      tagTTL: duration.optional(),
      timeout: duration.optional(),
      repositories: z.array(z.string({ error: 'expected a repository pattern' })).optional(),
      readOnly: z.boolean({ error: 'expected true or false' }).optional(),
    })
    .superRefine((value, ctx) => {
      checkPrefix(value.prefix, ctx);
      checkUrl(value.url, ctx);
      for (const pattern of value.repositories ?? []) {
        try {
          compilePatterns([pattern], 'repositories');
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['repositories'], message: (err as Error).message });
        }
      }
    })
    .transform(
      (value): UpstreamConfig => ({
        prefix: value.prefix,
        url: trimUrl(value.url),
        ...(value.credentials ? { credentials: value.credentials } : {}),
        tagTtlMs: value.tagTTL ?? PROXY_DEFAULTS.tagTtlMs,
        timeoutMs: value.timeout ?? PROXY_DEFAULTS.timeoutMs,
        ...(value.repositories ? { repositories: value.repositories } : {}),
        readOnly: value.readOnly ?? PROXY_DEFAULTS.readOnly,
      }),
    );
  return z
    .preprocess(
      (value, ctx) => (typeof value === 'string' ? fromText(value, ctx) : value),
      z.array(entry, { error: 'expected a list of upstreams (prefix, url, …) or PREFIX=URL[,PREFIX=URL…]' }),
    )
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      for (const { prefix } of list) {
        if (seen.has(prefix)) ctx.addIssue({ code: 'custom', message: `prefix ${prefix} is given twice` });
        seen.add(prefix);
      }
    });
}

/** `config print` shows the list with inline passwords hidden. */
export function redactProxies(value: unknown): unknown {
  if (!Array.isArray(value)) return value;
  return value.map((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null || !('credentials' in entry)) return entry;
    const credentials = (entry as { credentials: unknown }).credentials;
    if (typeof credentials !== 'object' || credentials === null) return entry;
    const password = (credentials as { password?: unknown }).password;
    return { ...entry, credentials: { ...credentials, password: typeof password === 'string' ? '***' : password } };
  });
}
