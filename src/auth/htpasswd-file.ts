/**
 * The htpasswd file format, read and written in one place: `user:hash` lines of bcrypt entries
 * (`$2y$`, `$2a$`, `$2b$`, as `htpasswd -B` and `portfolio user add` write them); blank lines and
 * `#` comments are kept as they are when the file is rewritten.
 */
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** Parses htpasswd text into user → hash; entries that are not bcrypt are reported and skipped. */
export function parseHtpasswd(text: string, warn?: (message: string) => void): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1).trim();
    if (colon <= 0) return warn?.(`line ${i + 1}: not user:hash`);
    if (!BCRYPT.test(hash)) return warn?.(`line ${i + 1}: user ${user} has no bcrypt hash (create it with htpasswd -B or portfolio user add)`);
    users.set(user, hash);
  });
  return users;
}

/** The cost factor of a bcrypt hash (the `10` of `$2y$10$…`). */
export function bcryptCost(hash: string): number {
  const m = BCRYPT.exec(hash);
  if (!m) throw new Error('not a bcrypt hash');
  return Number(m[1]);
}

/** A user name an htpasswd line can hold. */
export function validUserName(name: string): void {
  if (!/^(?!#)[^:\s]{1,255}$/.test(name)) throw new Error('a user name is 1 to 255 characters, without spaces or colons, not starting with #');
}

/**
 * The text with `user`'s entry added, replaced (`hash`) or removed (null), and whether the user
 * was there before.
 */
export function withEntry(text: string, user: string, hash: string | null): { text: string; existed: boolean } {
  validUserName(user);
  if (hash !== null && !BCRYPT.test(hash)) throw new Error('not a bcrypt hash');
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  const index = lines.findIndex((l) => !l.startsWith('#') && l.includes(':') && l.slice(0, l.indexOf(':')) === user);
  if (hash === null) {
    if (index !== -1) lines.splice(index, 1);
  } else if (index === -1) {
    lines.push(`${user}:${hash}`);
  } else {
    lines[index] = `${user}:${hash}`;
  }
  return { text: lines.length ? `${lines.join('\n')}\n` : '', existed: index !== -1 };
}

/**
 * Adds, replaces (hash) or removes (null) `user` in the file at `path`, keeping its mode and
 * replacing it atomically (a registry re-reading it never sees half a file). The file is created
 * (mode 0600) when a user is added to a missing one. Returns whether the user existed.
 */
export async function updateHtpasswdFile(path: string, user: string, hash: string | null): Promise<boolean> {
  let text = '';
  let mode = 0o600;
  try {
    text = await readFile(path, 'utf8');
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || hash === null) throw err;
  }
  const updated = withEntry(text, user, hash);
  if (hash === null && !updated.existed) return false;
  await mkdir(dirname(resolve(path)), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, updated.text, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
  return updated.existed;
}
