/**
 * Who may do what, from the command line:
 *
 * - `serveSecurity()` turns the `auth` settings (htpasswd, token auth, external issuers, the access
 *   policy) into the http layer's Authorizer.
 * - `portfolio user add|delete NAME`: maintain bcrypt (`$2y$`) entries of an htpasswd file.
 * - `portfolio token`: mint a token with the registry's key, or `--inspect` one.
 *
 * Auth is off unless one of --auth, --htpasswd, --access-policy or --external-jwks is given.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, type JWTVerifyGetKey } from 'jose';
import { hash as bcryptHash } from '@node-rs/bcrypt';
import type { Logger } from 'pino';
import { AccessControl, type AuthMode } from '../http/auth/access.js';
import { Htpasswd } from '../auth/htpasswd.js';
import { updateHtpasswdFile, validUserName } from '../auth/htpasswd-file.js';
import { LoginThrottle } from '../auth/login-throttle.js';
import { Policy } from '../auth/policy.js';
import { parseScopes, TokenIssuer, TokenVerifier, type ExternalIssuer } from '../auth/tokens.js';
import { configFromOptions, withSettings } from './config.js';
import { parseDuration } from './duration.js';
import type { Config } from './settings.js';

/** Registers `user` and `token` (the security settings of `serve` are in the settings table). */
export function registerAuthCommands(program: Command): void {
  const user = program.command('user').description('manage the users of an htpasswd file');
  withSettings(user.command('add'), 'user')
    .description('add a user or change their password (bcrypt $2y$); the password is read from a prompt, or from stdin when it is not a terminal')
    .argument('<name>', 'user name')
    .addOption(new Option('--cost <n>', 'bcrypt cost').default('10'))
    .action(async (name: string, flags: { cost: string }, command: Command) => {
      validUserName(name);
      const file = htpasswdOf(command);
      const cost = Number(flags.cost);
      if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new Error('--cost must be an integer from 4 to 31');
      const password = await readPassword();
      // htpasswd -B writes $2y$; the algorithm is the one bcrypt writes as $2b$.
      const entry = (await bcryptHash(password, cost)).replace(/^\$2b\$/, '$2y$');
      const added = !(await updateHtpasswdFile(file, name, entry));
      console.log(`${added ? 'added' : 'updated'} ${name} in ${file}`);
    });
  withSettings(user.command('delete'), 'user')
    .description('remove a user (their refresh tokens stop working)')
    .argument('<name>', 'user name')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const file = htpasswdOf(command);
      if (!(await updateHtpasswdFile(file, name, null))) throw new Error(`no user ${name} in ${file}`);
      console.log(`deleted ${name} from ${file}`);
    });

  withSettings(program.command('token'), 'token')
    .description('mint a token signed with the registry key (prints it), or --inspect one')
    .addOption(new Option('--scope <scope...>', 'e.g. repository:team/app:pull,push or registry:catalog:* (repeatable)'))
    .addOption(new Option('--account <name>', 'the subject of the token (default: anonymous)').default(''))
    .addOption(new Option('--ttl <duration>', 'lifetime').default('5m'))
    .addOption(new Option('--inspect <token>', 'decode and verify a token instead ("-": read it from stdin)'))
    .action(async (flags: { scope?: string[]; account: string; ttl: string; inspect?: string }, command: Command) => {
      const { config } = configFromOptions(command.opts());
      const { token: own } = config.auth;
      const key = await loadSigningKey(own.key, config.storage.data_dir, !flags.inspect);
      if (flags.inspect !== undefined) {
        const token = flags.inspect === '-' ? (await readStdin()).trim() : flags.inspect;
        const ok = await inspectToken(token, key, config);
        process.exitCode = ok ? 0 : 1;
        return;
      }
      const issuer = new TokenIssuer(key!, { issuer: own.issuer, service: own.service, ttlSeconds: ttlSeconds(parseDuration(flags.ttl), '--ttl') });
      const issued = await issuer.issue(flags.account, parseScopes(flags.scope ?? []));
      console.log(issued.token);
    });
}

function htpasswdOf(command: Command): string {
  const file = configFromOptions(command.opts()).config.auth.htpasswd;
  if (!file) throw new Error('no htpasswd file: give --htpasswd, PORTFOLIO_HTPASSWD or auth.htpasswd in --config');
  return file;
}

async function inspectToken(token: string, key: KeyObject | null, config: Config): Promise<boolean> {
  const { issuer: iss, service } = config.auth.token;
  let header: unknown;
  let claims: unknown;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch (err) {
    console.log(JSON.stringify({ valid: false, error: `not a JWT: ${(err as Error).message}` }, null, 2));
    return false;
  }
  const own = key ? { publicKey: new TokenIssuer(key, { issuer: iss, service, ttlSeconds: 60 }).publicKey, issuer: iss, audience: service } : null;
  const verifier = new TokenVerifier(own, await externalIssuer(config));
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

/** The access policy file, or "authenticated users may do everything" without one. */
export async function loadPolicy(file: string | undefined): Promise<Policy> {
  return file ? Policy.fromYaml(await readFile(file, 'utf8'), file) : Policy.authenticatedFullAccess();
}

/** The Authorizer of `serve`, from the `auth` section of the configuration. */
export async function serveSecurity(config: Config, logger: Logger): Promise<{ authorizer?: AccessControl }> {
  const auth = config.auth;
  const mode = auth.mode ?? (auth.external.jwks ? 'token' : auth.htpasswd || auth.policy ? 'basic' : 'none');
  if (mode === 'none') {
    if (auth.htpasswd || auth.policy || auth.external.jwks) throw new Error('--auth none contradicts --htpasswd, --access-policy and --external-jwks');
    return {};
  }
  const htpasswd = auth.htpasswd;
  const users = htpasswd ? await Htpasswd.open(resolve(htpasswd), { warn: (m) => logger.warn({ htpasswd }, m) }) : null;
  const policy = await loadPolicy(auth.policy);
  if (mode === 'basic' && (auth.external.jwks || auth.external.issuer)) throw new Error('external token issuers need --auth token');
  let issuer: TokenIssuer | null = null;
  let verifier: TokenVerifier | null = null;
  const { token } = auth;
  if (mode === 'token') {
    const key = await loadSigningKey(token.key, config.storage.data_dir, true);
    issuer = new TokenIssuer(key!, { issuer: token.issuer, service: token.service, ttlSeconds: ttlSeconds(token.ttl, '--token-ttl') });
    verifier = new TokenVerifier({ publicKey: issuer.publicKey, issuer: token.issuer, audience: token.service }, await externalIssuer(config));
  }
  const authorizer = new AccessControl({
    mode: mode as AuthMode,
    loginThrottle: new LoginThrottle(auth.login_failures),
    users,
    policy,
    issuer,
    verifier,
    service: token.service,
    realm: token.realm,
  });
  logger.info(
    {
      auth: mode,
      users: users?.userCount ?? 0,
      policy: auth.policy ?? 'authenticated users may do everything',
      ...(issuer ? { tokenKeyId: issuer.kid, service: token.service } : {}),
      ...(auth.external.issuer ? { externalIssuer: auth.external.issuer } : {}),
    },
    'access control',
  );
  return { authorizer };
}

async function externalIssuer(config: Config): Promise<ExternalIssuer | null> {
  const { issuer, jwks: source, audience } = config.auth.external;
  if (!issuer && !source) return null;
  if (!issuer || !source) throw new Error('--external-issuer and --external-jwks go together');
  let keys: JWTVerifyGetKey;
  if (/^https?:\/\//.test(source)) {
    keys = createRemoteJWKSet(new URL(source), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  } else {
    const jwks = JSON.parse(await readFile(source, 'utf8')) as Parameters<typeof createLocalJWKSet>[0];
    if (!Array.isArray(jwks?.keys)) throw new Error(`${source}: not a JWKS (no "keys" array)`);
    keys = createLocalJWKSet(jwks);
  }
  return { issuer, audience: audience ?? config.auth.token.service, keys };
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

function ttlSeconds(ms: number, flag: string): number {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) throw new Error(`${flag} must be at least 60s (token.md: clients expect at least 60 s)`);
  return seconds;
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
