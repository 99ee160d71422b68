/**
 * Who may do what, from the command line:
 *
 * - `serve` flags for authentication (htpasswd, token auth, external issuers), the access policy
 *   (`--config`). `serveSecurity()` turns them into the http layer's Authorizer.
 * - `portfolio user add|delete NAME`: maintain bcrypt (`$2y$`) entries of an htpasswd file.
 * - `portfolio token`: mint a token with the registry's key, or `--inspect` one.
 *
 * Auth is off unless one of --auth, --htpasswd, --config or --external-jwks is given.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, type JWTVerifyGetKey } from 'jose';
import { hash as bcryptHash } from '@node-rs/bcrypt';
import type { Logger } from 'pino';
import { AccessControl, type AuthMode } from '../http/auth/access.js';
import type { Authorizer } from '../http/auth/authorizer.js';
import { Htpasswd } from '../auth/htpasswd.js';
import { updateHtpasswdFile, validUserName } from '../auth/htpasswd-file.js';
import { LoginThrottle } from '../auth/login-throttle.js';
import { Policy } from '../auth/policy.js';
import { parseScopes, TokenIssuer, TokenVerifier, type ExternalIssuer } from '../auth/tokens.js';
import { parseDuration } from './duration.js';

export interface SecurityFlags {
  auth?: string;
  htpasswd?: string;
  config?: string;
  tokenKey?: string;
  tokenService: string;
  tokenIssuer: string;
  tokenTtl: string;
  tokenRealm?: string;
  externalIssuer?: string;
  externalJwks?: string;
  externalAudience?: string;
  loginFailures?: string;
  dataDir?: string;
}

/** Flags shared by `serve` and `token`: where the signing key is and what tokens say. */
function withTokenFlags(command: Command): Command {
  return command
    .addOption(new Option('--token-key <file>', 'PEM EC P-256 private key signing tokens (default: generated once in <data-dir>/auth/token-key.pem)').env('PORTFOLIO_TOKEN_KEY'))
    .addOption(new Option('--token-service <name>', 'service name: the audience of tokens and the `service` of challenges').env('PORTFOLIO_TOKEN_SERVICE').default('portfolio'))
    .addOption(new Option('--token-issuer <name>', 'issuer (`iss`) of the tokens Portfolio signs').env('PORTFOLIO_TOKEN_ISSUER').default('portfolio'))
    .addOption(new Option('--external-issuer <iss>', 'also accept tokens of this issuer…').env('PORTFOLIO_EXTERNAL_ISSUER'))
    .addOption(new Option('--external-jwks <file-or-url>', '…verified with this JWKS (a file or an https URL)').env('PORTFOLIO_EXTERNAL_JWKS'))
    .addOption(new Option('--external-audience <aud>', 'audience the external tokens must name (default: --token-service)').env('PORTFOLIO_EXTERNAL_AUDIENCE'));
}

/** Adds the auth flags to `serve`. */
export function withSecurityFlags(command: Command): Command {
  return withTokenFlags(command)
    .addOption(new Option('--auth <mode>', 'none, basic or token (default: basic with --htpasswd/--config, token with --external-jwks)').env('PORTFOLIO_AUTH').choices(['none', 'basic', 'token']))
    .addOption(new Option('--htpasswd <file>', 'users: an htpasswd file of bcrypt entries (htpasswd -B, portfolio user add)').env('PORTFOLIO_HTPASSWD'))
    .addOption(new Option('--config <file>', 'access policy (YAML, see docs/auth.md)').env('PORTFOLIO_CONFIG'))
    .addOption(new Option('--token-ttl <duration>', 'lifetime of issued tokens (at least 60s)').env('PORTFOLIO_TOKEN_TTL').default('5m'))
    .addOption(new Option('--login-failures <n/duration>', 'failed logins a client may make in a burst, and the time they take to come back (a user name gets three times as many)').env('PORTFOLIO_LOGIN_FAILURES').default('20/1m'))
    .addOption(new Option('--token-realm <url>', 'realm of Bearer challenges (default: <scheme>://<Host>/auth/token of the request)').env('PORTFOLIO_TOKEN_REALM'));
}

let serveFlags: SecurityFlags | undefined;

/** Registers `user` and `token`, and the security flags of `serve` (call after defining serve). */
export function registerAuthCommands(program: Command): void {
  const serveCommand = program.commands.find((c) => c.name() === 'serve');
  if (serveCommand) {
    withSecurityFlags(serveCommand);
    serveCommand.hook('preAction', (_command, action) => {
      serveFlags = action.opts<SecurityFlags>();
    });
  }

  const user = program.command('user').description('manage the users of an htpasswd file');
  user
    .command('add')
    .description('add a user or change their password (bcrypt $2y$); the password is read from a prompt, or from stdin when it is not a terminal')
    .argument('<name>', 'user name')
    .addOption(new Option('--htpasswd <file>', 'the htpasswd file (created when missing)').env('PORTFOLIO_HTPASSWD').makeOptionMandatory())
    .addOption(new Option('--cost <n>', 'bcrypt cost').default('10'))
    .action(async (name: string, flags: { htpasswd: string; cost: string }) => {
      validUserName(name);
      const cost = Number(flags.cost);
      if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new Error('--cost must be an integer from 4 to 31');
      const password = await readPassword();
      // htpasswd -B writes $2y$; the algorithm is the one bcrypt writes as $2b$.
      const entry = (await bcryptHash(password, cost)).replace(/^\$2b\$/, '$2y$');
      const added = !(await updateHtpasswdFile(flags.htpasswd, name, entry));
      console.log(`${added ? 'added' : 'updated'} ${name} in ${flags.htpasswd}`);
    });
  user
    .command('delete')
    .description('remove a user (their refresh tokens stop working)')
    .argument('<name>', 'user name')
    .addOption(new Option('--htpasswd <file>', 'the htpasswd file').env('PORTFOLIO_HTPASSWD').makeOptionMandatory())
    .action(async (name: string, flags: { htpasswd: string }) => {
      if (!(await updateHtpasswdFile(flags.htpasswd, name, null))) throw new Error(`no user ${name} in ${flags.htpasswd}`);
      console.log(`deleted ${name} from ${flags.htpasswd}`);
    });

  withTokenFlags(program.command('token'))
    .description('mint a token signed with the registry key (prints it), or --inspect one')
    .addOption(new Option('--data-dir <dir>', 'data directory of the registry (where its generated key is)').env('PORTFOLIO_DATA_DIR').default('./portfolio-data'))
    .addOption(new Option('--scope <scope...>', 'e.g. repository:team/app:pull,push or registry:catalog:* (repeatable)'))
    .addOption(new Option('--account <name>', 'the subject of the token (default: anonymous)').default(''))
    .addOption(new Option('--ttl <duration>', 'lifetime').default('5m'))
    .addOption(new Option('--inspect <token>', 'decode and verify a token instead ("-": read it from stdin)'))
    .action(async (flags: SecurityFlags & { dataDir: string; scope?: string[]; account: string; ttl: string; inspect?: string }) => {
      const key = await loadSigningKey(flags.tokenKey, flags.dataDir, !flags.inspect);
      if (flags.inspect !== undefined) {
        const token = flags.inspect === '-' ? (await readStdin()).trim() : flags.inspect;
        const ok = await inspectToken(token, key, flags);
        process.exitCode = ok ? 0 : 1;
        return;
      }
      const issuer = new TokenIssuer(key!, { issuer: flags.tokenIssuer, service: flags.tokenService, ttlSeconds: ttlSeconds(flags.ttl, '--ttl') });
      const issued = await issuer.issue(flags.account, parseScopes(flags.scope ?? []));
      console.log(issued.token);
    });
}

async function inspectToken(token: string, key: KeyObject | null, flags: SecurityFlags): Promise<boolean> {
  let header: unknown;
  let claims: unknown;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch (err) {
    console.log(JSON.stringify({ valid: false, error: `not a JWT: ${(err as Error).message}` }, null, 2));
    return false;
  }
  const own = key ? { publicKey: new TokenIssuer(key, { issuer: flags.tokenIssuer, service: flags.tokenService, ttlSeconds: 60 }).publicKey, issuer: flags.tokenIssuer, audience: flags.tokenService } : null;
  const verifier = new TokenVerifier(own, await externalIssuer(flags));
  const result = await verifier.verify(token);
  const exp = (claims as { exp?: number }).exp;
  const out = {
    valid: !('error' in result),
    ...('error' in result ? { error: result.error } : { issuer: result.ours ? 'portfolio' : 'external' }),
    header,
    claims,
    ...(exp ? { expires: new Date(exp * 1000).toISOString() } : {}),
  };
  console.log(JSON.stringify(out, null, 2));
  return out.valid;
}

/** The Authorizer of `serve`, from the flags that registerAuthCommands added. */
export async function serveSecurity(dataDir: string, logger: Logger, flags: SecurityFlags | undefined = serveFlags): Promise<{ authorizer?: Authorizer }> {
  if (!flags) return {};
  const mode = flags.auth ?? (flags.externalJwks ? 'token' : flags.htpasswd || flags.config ? 'basic' : 'none');
  if (mode === 'none') {
    if (flags.htpasswd || flags.config || flags.externalJwks) throw new Error('--auth none contradicts --htpasswd, --config and --external-jwks');
    return {};
  }
  const users = flags.htpasswd ? await Htpasswd.open(resolve(flags.htpasswd), { warn: (m) => logger.warn({ htpasswd: flags.htpasswd }, m) }) : null;
  const policy = flags.config ? Policy.fromYaml(await readFile(flags.config, 'utf8'), flags.config) : Policy.authenticatedFullAccess();
  if (mode === 'basic' && (flags.externalJwks || flags.externalIssuer)) throw new Error('external token issuers need --auth token');
  let issuer: TokenIssuer | null = null;
  let verifier: TokenVerifier | null = null;
  if (mode === 'token') {
    const key = await loadSigningKey(flags.tokenKey, dataDir ?? flags.dataDir ?? '.', true);
    issuer = new TokenIssuer(key!, { issuer: flags.tokenIssuer, service: flags.tokenService, ttlSeconds: ttlSeconds(flags.tokenTtl, '--token-ttl') });
    verifier = new TokenVerifier({ publicKey: issuer.publicKey, issuer: flags.tokenIssuer, audience: flags.tokenService }, await externalIssuer(flags));
  }
  const authorizer = new AccessControl({
    mode: mode as AuthMode,
    loginThrottle: new LoginThrottle(parseLoginFailures(flags.loginFailures ?? '20/1m')),
    users,
    policy,
    issuer,
    verifier,
    service: flags.tokenService,
    realm: flags.tokenRealm,
  });
  logger.info(
    {
      auth: mode,
      users: users?.userCount ?? 0,
      policy: flags.config ?? 'authenticated users may do everything',
      ...(issuer ? { tokenKeyId: issuer.kid, service: flags.tokenService } : {}),
      ...(flags.externalIssuer ? { externalIssuer: flags.externalIssuer } : {}),
    },
    'access control',
  );
  return { authorizer };
}

async function externalIssuer(flags: SecurityFlags): Promise<ExternalIssuer | null> {
  if (!flags.externalIssuer && !flags.externalJwks) return null;
  if (!flags.externalIssuer || !flags.externalJwks) throw new Error('--external-issuer and --external-jwks go together');
  let keys: JWTVerifyGetKey;
  if (/^https?:\/\//.test(flags.externalJwks)) {
    keys = createRemoteJWKSet(new URL(flags.externalJwks), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  } else {
    const jwks = JSON.parse(await readFile(flags.externalJwks, 'utf8')) as Parameters<typeof createLocalJWKSet>[0];
    if (!Array.isArray(jwks?.keys)) throw new Error(`${flags.externalJwks}: not a JWKS (no "keys" array)`);
    keys = createLocalJWKSet(jwks);
  }
  return { issuer: flags.externalIssuer, audience: flags.externalAudience ?? flags.tokenService, keys };
}

/**
 * The token signing key: `--token-key`, or `<data-dir>/auth/token-key.pem`, generated on first
 * use (replicas behind one load balancer must share a key: give them --token-key).
 */
export async function loadSigningKey(file: string | undefined, dataDir: string, create: boolean): Promise<KeyObject | null> {
  const path = file ?? join(resolve(dataDir), 'auth', 'token-key.pem');
  try {
    return createPrivateKey(await readFile(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`token key ${path}: ${(err as Error).message}`);
    if (file !== undefined) throw new Error(`token key ${path}: no such file`);
    if (!create) return null;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  try {
    await writeFile(path, pem, { flag: 'wx', mode: 0o600 });
    return privateKey;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return createPrivateKey(await readFile(path));
    throw err;
  }
}

function ttlSeconds(value: string, flag: string): number {
  const seconds = Math.floor(parseDuration(value) / 1000);
  if (seconds < 60) throw new Error(`${flag} must be at least 60s (token.md: clients expect at least 60 s)`);
  return seconds;
}

/** `N/DURATION`: N failed logins in a burst, all back after DURATION. */
function parseLoginFailures(value: string): { failures: number; periodMs: number } {
  const slash = value.indexOf('/');
  const failures = Number(value.slice(0, slash));
  const periodMs = slash === -1 ? NaN : parseDuration(value.slice(slash + 1));
  if (!Number.isInteger(failures) || failures < 1 || !(periodMs > 0)) throw new Error(`invalid --login-failures ${JSON.stringify(value)} (example: 20/1m)`);
  return { failures, periodMs };
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await readStdin();
    const password = text.replace(/\r?\n$/, '');
    if (password === '') throw new Error('empty password on stdin');
    return password;
  }
  const first = await prompt('Password: ');
  if (first === '') throw new Error('empty password');
  const second = await prompt('Repeat password: ');
  if (first !== second) throw new Error('the passwords differ');
  return first;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolvePromise(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
