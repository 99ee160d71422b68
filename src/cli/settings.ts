/**
 * Every setting of Portfolio, once: its key in the configuration file (the tree's shape), its flag,
 * its environment variable, its default and the schema its value must pass. Flags, `--help`, the
 * file's validation and `config print` are all derived from this table: a new setting is one entry.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseDuration, parseLoginFailures, parseRate, parseSize } from './duration.js';
import { LOG_FORMATS } from './log.js';
import { redact } from '../backends/sql/database.js';
import { LIMIT_DEFAULTS } from '../http/limits.js';
import { EVENT_ACTIONS } from '../core/events.js';
import { RepositoryPattern } from '../core/patterns.js';
import { TagPattern } from '../core/policies.js';
import { EVENT_FORMATS } from '../backends/events/formats.js';
import { proxySchema, redactProxies } from './proxy-settings.js';

/** Which commands take a setting as a flag (the file and environment apply to all of them). */
export type Group = 'engine' | 'serve' | 'token' | 'user' | 'cache';

interface Spec<V> {
  /** The commander flag, e.g. `--addr <host:port>`; absent for settings only a file can express (lists). */
  flag?: string;
  env?: string;
  help: string;
  /** In the same form as a flag value, so `--help` and `config print` show it as typed. */
  default?: string;
  schema: z.ZodType<V, unknown>;
  on: readonly Group[];
  /** Printed redacted by `config print`; may be given as `{file: PATH}` or `{env: NAME}` in the file. */
  secret?: (value: never) => unknown;
  /** Applied by SIGHUP without a restart. */
  reloadable?: boolean;
  /** The flag may be given several times; its values are joined with commas, as in the environment variable. */
  repeatable?: boolean;
}

export class Setting<V, R extends boolean> {
  declare readonly required: R;
  constructor(readonly spec: Spec<V>) {}
}

function setting<V>(spec: Spec<V> & { default: string }): Setting<V, true>;
function setting<V>(spec: Spec<V>): Setting<V, false>;
function setting<V>(spec: Spec<V>): Setting<V, boolean> {
  return new Setting(spec);
}

/** A string parsed by `parse`, whose error message is the one shown. Numbers are accepted as their text (`300` seconds). */
function parsed<V>(expected: string, parse: (text: string) => V, numbers = true) {
  const input = numbers ? z.union([z.string(), z.number()], { error: `expected ${expected}` }) : z.string({ error: `expected ${expected}` });
  return input.transform((value, ctx) => {
    try {
      return parse(String(value));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

const text = (expected = 'a string') => z.string({ error: `expected ${expected}` });
const duration = () => parsed('a duration (30s, 15m, 24h)', parseDuration);
const size = () => parsed('a size (512K, 10M, 5G)', parseSize);
const count = () =>
  parsed('a non-negative integer', (value) => {
    if (!/^\d+$/.test(value)) throw new Error(`expected a non-negative integer, got ${JSON.stringify(value)}`);
    return Number(value);
  });
/** `auto` or a count of worker processes (at least 1; 256 is far past any core count worth it). */
function parseWorkers(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 256) throw new Error(`expected a number from 1 to 256 or auto, got ${JSON.stringify(value)}`);
  return Number(value);
}
const choice = <T extends string>(values: readonly T[]) =>
  z.enum(values as [T, ...T[]], { error: `expected one of ${values.join(', ')}` });

/**
 * A secret: inline, or `{file: PATH}` (the file's content, a trailing newline dropped) or
 * `{env: NAME}` (an environment variable), so it need not sit in the configuration file.
 */
const secret = () =>
  z
    .union([z.string(), z.strictObject({ file: z.string() }), z.strictObject({ env: z.string() })], {
      error: 'expected a string, {file: PATH} or {env: NAME}',
    })
    .transform((value, ctx) => {
      if (typeof value === 'string') return value;
      if ('file' in value) {
        try {
          return readFileSync(value.file, 'utf8').replace(/\r?\n$/, '');
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: `cannot read secret file ${value.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
          return z.NEVER;
        }
      }
      const found = process.env[value.env];
      if (found === undefined || found === '') {
        ctx.addIssue({ code: 'custom', message: `environment variable ${value.env} is not set` });
        return z.NEVER;
      }
      return found;
    });

const flag = () =>
  z
    .union([z.boolean(), z.enum(['true', 'false', 'on', 'off'])], { error: 'expected true or false' })
    .transform((v) => v === true || v === 'true' || v === 'on');

/** One event sink of `events.sinks` (docs/events.md). */
const sink = () =>
  z
    .strictObject({
      name: text('a sink name').regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'use letters, digits, . _ - (at most 64)' }),
      type: choice(['webhook', 'nats']),
      url: secret(),
      subject: text('a NATS subject').optional(),
      format: choice(EVENT_FORMATS).optional(),
      headers: z.record(z.string(), secret()).optional(),
      user: text().optional(),
      password: secret().optional(),
      token: secret().optional(),
      timeout: duration().optional(),
      backoff: z.strictObject({ initial: duration().optional(), max: duration().optional() }).optional(),
      max_attempts: count().optional(),
      filter: z
        .strictObject({
          actions: z.array(choice(EVENT_ACTIONS)).optional(),
          repositories: z
            .array(text('a repository pattern'))
            .optional()
            .superRefine((patterns, ctx) => {
              for (const p of patterns ?? []) {
                try {
                  new RepositoryPattern(p, 'filter');
                } catch (err) {
                  ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^filter: /, '') });
                }
              }
            }),
          media_types: z.array(text('a media type')).optional(),
        })
        .optional(),
    })
    .superRefine((s, ctx) => {
      if (s.type === 'nats' && !s.subject) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'a nats sink needs a subject' });
      if (s.type === 'webhook' && !/^https?:\/\//.test(s.url)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'a webhook url is http:// or https://' });
      if (s.type === 'nats' && !/^(nats|tls):\/\//.test(s.url)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'a nats url is nats://HOST:PORT' });
    });
export type SinkConfig = z.output<ReturnType<typeof sink>>;

/** Sinks as `config print` shows them: header values, passwords, tokens and URL passwords hidden. */
function redactSinks(sinks: Record<string, unknown>[]): unknown {
  return sinks.map((s) => ({
    ...s,
    ...(typeof s.url === 'string' ? { url: redact(s.url) } : {}),
    ...(s.headers && typeof s.headers === 'object' ? { headers: Object.fromEntries(Object.keys(s.headers).map((k) => [k, '***'])) } : {}),
    ...(typeof s.password === 'string' ? { password: '***' } : {}),
    ...(typeof s.token === 'string' ? { token: '***' } : {}),
  }));
}

/** A repository pattern (src/core/patterns.ts), checked where it is written. */
const repositoryPattern = () =>
  text('a repository pattern').superRefine((p, ctx) => {
    try {
      new RepositoryPattern(p, 'pattern');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^pattern: /, '') });
    }
  });

/** `policies.quotas` and `policies.immutableTags` (docs/policies.md). */
const quota = () => z.strictObject({ scope: repositoryPattern(), limit: size() }).transform((q) => ({ kind: 'quota' as const, ...q }));
const immutableTags = () =>
  z
    .strictObject({
      repositories: repositoryPattern(),
      tags: text('a tag pattern').superRefine((p, ctx) => {
        try {
          new TagPattern(p, 'pattern');
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^pattern: /, '') });
        }
      }),
    })
    .transform((r) => ({ kind: 'immutable' as const, ...r }));

const retention = () =>
  z
    .strictObject({
      repositories: repositoryPattern(),
      keepLast: count().optional(),
      keepTags: text('a tag pattern')
        .superRefine((p, ctx) => {
          try {
            new TagPattern(p, 'pattern');
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^pattern: /, '') });
          }
        })
        .optional(),
      keepPulledWithin: duration().optional(),
      deleteUntaggedAfter: duration().optional(),
    })
    .transform((r) => ({ kind: 'retention' as const, ...r }));

const ADDR = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/;
const addr = () => text('HOST:PORT').refine((v) => ADDR.test(v) && Number(ADDR.exec(v)![3]) <= 65535, { message: 'use HOST:PORT' });

const seconds = (ms: number) => `${ms / 1000}s`;
const L = LIMIT_DEFAULTS;
const ENGINE = ['engine'] as const;
const SERVE = ['serve'] as const;
const TOKEN = ['serve', 'token'] as const;

export const SETTINGS = {
  http: {
    addr: setting({ flag: '--addr <host:port>', env: 'PORTFOLIO_ADDR', default: '0.0.0.0:5000', help: 'address to listen on', schema: addr(), on: SERVE }),
    workers: setting({
      flag: '--workers <n>',
      env: 'PORTFOLIO_WORKERS',
      default: '1',
      help: 'processes serving the listener together: a number, or auto for one per available core',
      schema: parsed('a positive integer or auto', parseWorkers),
      on: SERVE,
    }),
    tls: {
      cert: setting({ flag: '--tls-cert <file>', env: 'PORTFOLIO_TLS_CERT', help: 'PEM certificate: serve HTTPS', schema: text('a file name'), on: SERVE }),
      key: setting({ flag: '--tls-key <file>', env: 'PORTFOLIO_TLS_KEY', help: 'PEM private key for --tls-cert', schema: text('a file name'), on: SERVE }),
    },
  },
  database: {
    url: setting({
      flag: '--database-url <url>',
      env: 'PORTFOLIO_DATABASE_URL',
      help: 'postgres://… to keep metadata in PostgreSQL (default: SQLite in the data directory)',
      schema: secret(),
      secret: redact,
      on: ENGINE,
    }),
    sqlite_synchronous: setting({
      flag: '--sqlite-synchronous <mode>',
      env: 'PORTFOLIO_SQLITE_SYNCHRONOUS',
      default: 'normal',
      help: 'SQLite commits: normal survives process crashes, full also power loss (slower)',
      schema: choice(['full', 'normal']),
      on: ENGINE,
    }),
  },
  storage: {
    data_dir: setting({
      flag: '--data-dir <dir>',
      env: 'PORTFOLIO_DATA_DIR',
      default: './portfolio-data',
      help: 'directory for the embedded database, blob files and generated token key',
      schema: text('a directory'),
      on: ['engine', 'token'],
    }),
    url: setting({ flag: '--storage <url>', env: 'PORTFOLIO_STORAGE', help: 's3://BUCKET[/PREFIX] to keep blobs in S3 (default: files in the data directory)', schema: text('a URL'), on: ENGINE }),
    inline_blob_size: setting({
      flag: '--inline-blob-size <size>',
      env: 'PORTFOLIO_INLINE_BLOB_SIZE',
      default: '64K',
      help: 'blobs up to this size are kept in the database instead of the object store (0: none; at most 1M)',
      // A request's inline bytes are held in memory until it ends; past this they belong in the object store.
      schema: size().refine((bytes) => bytes <= 1024 * 1024, { message: 'at most 1M' }),
      on: ENGINE,
    }),
    blob_redirect: setting({
      flag: '--blob-redirect <duration>',
      env: 'PORTFOLIO_BLOB_REDIRECT',
      help: 'answer blob GETs with a 307 to a presigned S3 URL valid this long (default: off)',
      schema: duration(),
      on: ENGINE,
    }),
  },
  uploads: {
    ttl: setting({ flag: '--upload-ttl <duration>', env: 'PORTFOLIO_UPLOAD_TTL', default: '24h', help: 'how long an idle upload session lives', schema: duration(), on: ENGINE }),
    max_blob_size: setting({ flag: '--max-blob-size <size>', env: 'PORTFOLIO_MAX_BLOB_SIZE', help: 'largest accepted blob, e.g. 10G (default: no limit)', schema: size(), on: ENGINE }),
    sweep_interval: setting({
      flag: '--upload-sweep-interval <duration>',
      env: 'PORTFOLIO_UPLOAD_SWEEP_INTERVAL',
      default: '10m',
      help: 'how often expired upload sessions are reclaimed',
      schema: duration(),
      on: SERVE,
    }),
  },
  gc: {
    interval: setting({ flag: '--gc-interval <duration>', env: 'PORTFOLIO_GC_INTERVAL', default: '1h', help: 'how often garbage is collected in the background (0: never)', schema: duration(), on: SERVE }),
    grace: setting({ flag: '--gc-grace <duration>', env: 'PORTFOLIO_GC_GRACE', default: '24h', help: 'garbage collection keeps anything touched more recently than this', schema: duration(), on: SERVE }),
    delete_untagged: setting({
      flag: '--gc-delete-untagged <duration>',
      env: 'PORTFOLIO_GC_DELETE_UNTAGGED',
      help: 'collection also deletes untagged manifests not pushed or tagged for this long',
      schema: duration(),
      on: SERVE,
    }),
  },
  auth: {
    mode: setting({
      flag: '--auth <mode>',
      env: 'PORTFOLIO_AUTH',
      help: 'none, basic or token (default: basic with --htpasswd/--access-policy, token with --external-jwks)',
      schema: choice(['none', 'basic', 'token']),
      on: SERVE,
    }),
    htpasswd: setting({
      flag: '--htpasswd <file>',
      env: 'PORTFOLIO_HTPASSWD',
      help: 'users: an htpasswd file of bcrypt entries (htpasswd -B, portfolio user add); re-read when it changes',
      schema: text('a file name'),
      on: ['serve', 'user'],
    }),
    policy: setting({
      flag: '--access-policy <file>',
      env: 'PORTFOLIO_ACCESS_POLICY',
      help: 'access policy (YAML, see docs/auth.md); re-read on SIGHUP',
      schema: text('a file name'),
      on: SERVE,
      reloadable: true,
    }),
    login_failures: setting({
      flag: '--login-failures <n/duration>',
      env: 'PORTFOLIO_LOGIN_FAILURES',
      default: '20/1m',
      help: 'failed logins a client may make in a burst, and the time they take to come back (a user name gets three times as many)',
      schema: parsed('N/DURATION (20/1m)', parseLoginFailures, false),
      on: SERVE,
    }),
    token: {
      key: setting({
        flag: '--token-key <file>',
        env: 'PORTFOLIO_TOKEN_KEY',
        help: 'PEM EC P-256 private key signing tokens (default: generated once in <data-dir>/auth/token-key.pem)',
        schema: text('a file name'),
        on: TOKEN,
      }),
      service: setting({
        flag: '--token-service <name>',
        env: 'PORTFOLIO_TOKEN_SERVICE',
        default: 'portfolio',
        help: 'service name: the audience of tokens and the `service` of challenges',
        schema: text(),
        on: TOKEN,
      }),
      issuer: setting({ flag: '--token-issuer <name>', env: 'PORTFOLIO_TOKEN_ISSUER', default: 'portfolio', help: 'issuer (`iss`) of the tokens Portfolio signs', schema: text(), on: TOKEN }),
      ttl: setting({ flag: '--token-ttl <duration>', env: 'PORTFOLIO_TOKEN_TTL', default: '5m', help: 'lifetime of issued tokens (at least 60s)', schema: duration(), on: SERVE }),
      realm: setting({
        flag: '--token-realm <url>',
        env: 'PORTFOLIO_TOKEN_REALM',
        help: 'realm of Bearer challenges (default: <scheme>://<Host>/auth/token of the request)',
        schema: text('a URL'),
        on: SERVE,
      }),
    },
    external: {
      issuer: setting({ flag: '--external-issuer <iss>', env: 'PORTFOLIO_EXTERNAL_ISSUER', help: 'also accept tokens of this issuer…', schema: text(), on: TOKEN }),
      jwks: setting({ flag: '--external-jwks <file-or-url>', env: 'PORTFOLIO_EXTERNAL_JWKS', help: '…verified with this JWKS (a file or an https URL)', schema: text('a file name or URL'), on: TOKEN }),
      audience: setting({
        flag: '--external-audience <aud>',
        env: 'PORTFOLIO_EXTERNAL_AUDIENCE',
        help: 'audience the external tokens must name (default: --token-service)',
        schema: text(),
        on: TOKEN,
      }),
    },
  },
  limits: {
    max_connections: setting({
      flag: '--max-connections <n>',
      env: 'PORTFOLIO_MAX_CONNECTIONS',
      default: String(L.maxConnections),
      help: 'open connections in all; past it new ones are closed at once (0: unlimited)',
      schema: count(),
      on: SERVE,
    }),
    max_connections_per_client: setting({
      flag: '--max-connections-per-client <n>',
      env: 'PORTFOLIO_MAX_CONNECTIONS_PER_CLIENT',
      default: String(L.maxConnectionsPerClient),
      help: 'open connections per client IP; past it new ones are closed at once (0: unlimited)',
      schema: count(),
      on: SERVE,
    }),
    max_concurrent_requests: setting({
      flag: '--max-concurrent-requests <n>',
      env: 'PORTFOLIO_MAX_CONCURRENT_REQUESTS',
      default: String(L.maxConcurrentPerClient),
      help: 'requests in flight per client IP; more get 429 (0: unlimited)',
      schema: count(),
      on: SERVE,
    }),
    rate_limit: setting({
      flag: '--rate-limit <n/s>',
      env: 'PORTFOLIO_RATE_LIMIT',
      help: 'requests per second per client IP, e.g. 50/s (default: unlimited)',
      schema: parsed('a rate (50/s)', parseRate),
      on: SERVE,
    }),
    header_timeout: setting({
      flag: '--header-timeout <duration>',
      env: 'PORTFOLIO_HEADER_TIMEOUT',
      default: seconds(L.headerTimeoutMs),
      help: 'time allowed for a request’s headers',
      schema: duration().refine((ms) => ms > 0, { message: 'must be positive' }),
      on: SERVE,
    }),
    idle_timeout: setting({
      flag: '--idle-timeout <duration>',
      env: 'PORTFOLIO_IDLE_TIMEOUT',
      default: seconds(L.idleTimeoutMs),
      help: 'longest silence of a request body or a stalled download (0: none)',
      schema: duration(),
      on: SERVE,
    }),
    body_timeout: setting({
      flag: '--body-timeout <duration>',
      env: 'PORTFOLIO_BODY_TIMEOUT',
      default: seconds(L.bodyTimeoutMs),
      help: 'time allowed for a body read whole into memory: manifest, token request (0: none)',
      schema: duration(),
      on: SERVE,
    }),
    min_transfer_rate: setting({
      flag: '--min-transfer-rate <size>',
      env: 'PORTFOLIO_MIN_TRANSFER_RATE',
      default: `${L.minTransferRate / 1024}K`,
      help: 'bytes per second a client must send or read while a transfer waits on it, e.g. 4K (0: none)',
      schema: parsed('a size per second (4K)', (v) => parseSize(v.replace(/\/s$/, ''))),
      on: SERVE,
    }),
    transfer_window: setting({
      flag: '--transfer-window <duration>',
      env: 'PORTFOLIO_TRANSFER_WINDOW',
      default: seconds(L.transferWindowMs),
      help: 'the window over which --min-transfer-rate is measured',
      schema: duration(),
      on: SERVE,
    }),
  },
  log: {
    level: setting({
      flag: '--log-level <level>',
      env: 'PORTFOLIO_LOG_LEVEL',
      default: 'info',
      help: 'fatal, error, warn, info, debug; re-read on SIGHUP',
      schema: choice(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
      on: SERVE,
      reloadable: true,
    }),
    format: setting({
      flag: '--log-format <format>',
      env: 'PORTFOLIO_LOG_FORMAT',
      help: 'text: one readable line per record; json: JSON lines (default: text on a terminal, else json)',
      schema: choice(LOG_FORMATS),
      on: SERVE,
    }),
  },
  proxy: setting({
    flag: '--proxy <prefix=url>',
    env: 'PORTFOLIO_PROXY',
    help: 'cache the registry at URL under the repository prefix PREFIX (repeatable; the file form takes credentials and more, docs/proxy.md)',
    schema: proxySchema(secret(), duration()),
    on: ['serve', 'cache'],
    repeatable: true,
    secret: redactProxies,
  }),
  cache: {
    prune_unused_for: setting({
      flag: '--cache-prune-unused-for <duration>',
      env: 'PORTFOLIO_CACHE_PRUNE_UNUSED_FOR',
      help: 'with proxy: each garbage collection pass first deletes cached manifests not pulled for this long (default: off; `portfolio cache prune` on demand)',
      schema: duration().refine((ms) => ms > 0, { message: 'must be positive' }),
      on: SERVE,
    }),
  },
  events: {
    webhook: setting({
      flag: '--events-webhook <url>',
      env: 'PORTFOLIO_EVENTS_WEBHOOK',
      help: 'send events (all but pulls) to this URL in CNCF distribution’s envelope; re-read on SIGHUP',
      schema: secret().refine((url) => /^https?:\/\//.test(url), { message: 'use an http:// or https:// URL' }),
      secret: redact,
      on: SERVE,
      reloadable: true,
    }),
    sinks: setting({
      help: 'event sinks: webhooks and NATS JetStream subjects with formats, filters and retries (docs/events.md); re-read on SIGHUP',
      schema: z
        .array(sink(), { error: 'expected a list of sinks' })
        .superRefine((sinks, ctx) => {
          const seen = new Set<string>();
          sinks.forEach((s, i) => {
            if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `sink name ${s.name} is used twice` });
            seen.add(s.name);
          });
        }),
      secret: redactSinks,
      on: SERVE,
      reloadable: true,
    }),
    pulls: setting({
      flag: '--events-pulls <bool>',
      env: 'PORTFOLIO_EVENTS_PULLS',
      default: 'false',
      help: 'record an event for every manifest pull (a database write per pull); re-read on SIGHUP',
      schema: flag(),
      on: SERVE,
      reloadable: true,
    }),
    poll_interval: setting({
      flag: '--events-poll-interval <duration>',
      env: 'PORTFOLIO_EVENTS_POLL_INTERVAL',
      default: '1s',
      help: 'how often delivery looks for events recorded by other replicas or due for a retry',
      schema: duration().refine((ms) => ms > 0, { message: 'must be positive' }),
      on: SERVE,
    }),
    retention: setting({
      flag: '--events-retention <duration>',
      env: 'PORTFOLIO_EVENTS_RETENTION',
      default: '7d',
      help: 'delivered events are kept this long (for `portfolio events list`), then deleted',
      schema: duration(),
      on: SERVE,
    }),
  },
  ui: {
    enabled: setting({
      flag: '--ui <on|off>',
      env: 'PORTFOLIO_UI',
      default: 'on',
      help: 'serve the web interface at /ui/ and its JSON API at /_portfolio/api/v1/',
      schema: flag(),
      on: SERVE,
    }),
    session_ttl: setting({
      flag: '--ui-session-ttl <duration>',
      env: 'PORTFOLIO_UI_SESSION_TTL',
      default: '12h',
      help: 'how long a login to the web interface lasts',
      schema: duration().refine((ms) => ms > 0, { message: 'must be positive' }),
      on: SERVE,
    }),
  },
  policies: {
    quotas: setting({
      help: 'storage quotas: [{scope: team-a/**, limit: 10GiB}] (docs/policies.md); applied at start and on SIGHUP',
      schema: z.array(quota(), { error: 'expected a list of {scope, limit}' }),
      on: SERVE,
      reloadable: true,
    }),
    immutableTags: setting({
      help: 'immutable tags: [{repositories: team-a/**, tags: v*}] (docs/policies.md); applied at start and on SIGHUP',
      schema: z.array(immutableTags(), { error: 'expected a list of {repositories, tags}' }),
      on: SERVE,
      reloadable: true,
    }),
    retention: setting({
      help: 'retention: [{repositories, keepLast, keepTags, keepPulledWithin, deleteUntaggedAfter}] (docs/policies.md); applied at start and on SIGHUP',
      schema: z.array(retention(), { error: 'expected a list of {repositories, keepLast, keepTags, keepPulledWithin, deleteUntaggedAfter}' }),
      on: SERVE,
      reloadable: true,
    }),
  },
  metrics: {
    addr: setting({
      flag: '--metrics-addr <host:port>',
      env: 'PORTFOLIO_METRICS_ADDR',
      help: 'serve /metrics on this address of its own instead of the main listener',
      schema: addr(),
      on: SERVE,
    }),
  },
};

type Tree = { [key: string]: Setting<unknown, boolean> | Tree };

/** The typed configuration: the table's shape, each leaf its parsed value. */
export type ConfigOf<T> = {
  [K in keyof T]: T[K] extends Setting<infer V, infer R> ? (R extends true ? V : V | undefined) : ConfigOf<T[K]>;
};
export type Config = ConfigOf<typeof SETTINGS>;

export interface Leaf {
  path: string[];
  key: string;
  setting: Setting<unknown, boolean>;
}

/** Every setting with its path in the file, in table order. */
export function leaves(tree: Tree = SETTINGS as unknown as Tree, path: string[] = []): Leaf[] {
  return Object.entries(tree).flatMap(([name, node]) =>
    node instanceof Setting ? [{ path: [...path, name], key: [...path, name].join('.'), setting: node }] : leaves(node, [...path, name]),
  );
}

/** The file's schema: every section a strict mapping, every leaf optional (defaults are filled in before). */
export function configSchema(tree: Tree = SETTINGS as unknown as Tree): z.ZodType<unknown, unknown> {
  const shape: Record<string, z.ZodType<unknown, unknown>> = {};
  for (const [name, node] of Object.entries(tree)) shape[name] = node instanceof Setting ? node.spec.schema.optional() : configSchema(node);
  return z.strictObject(shape, { error: (issue) => (issue.code === 'invalid_type' ? 'expected a mapping' : undefined) });
}
