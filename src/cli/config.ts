/**
 * The one place that reads the configuration file and the environment: it merges defaults, the
 * file, environment variables and flags (in rising precedence) into one tree, validates it against
 * the settings table and returns the typed configuration. An error is one line naming where the bad
 * value came from: `FILE:LINE:COL`, the environment variable or the flag.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { isMap, isScalar, LineCounter, parseDocument, stringify, type Document } from 'yaml';
import type { z } from 'zod';
import { configSchema, leaves, type Config, type Group, type Leaf } from './settings.js';

export const CONFIG_ENV = 'PORTFOLIO_CONFIG';

type Source = 'default' | 'file' | 'env' | 'flag';
type Raw = Record<string, unknown>;

export interface LoadedConfig {
  config: Config;
  /** The merged values as given (before parsing), for `config print`. */
  raw: Raw;
  file?: string;
}

export interface ConfigInputs {
  /** The configuration file, if any (`--config` or PORTFOLIO_CONFIG). */
  file?: string;
  env: NodeJS.ProcessEnv;
  /** Flag values by setting key (`http.addr`), as commander parsed them. */
  flags: Record<string, string | undefined>;
}

/** Adds `--config` and the flags of the settings of these groups. */
export function withSettings(command: Command, ...groups: Group[]): Command {
  command.addOption(new Option('--config <file>', `configuration file (YAML, docs/configuration.md) [env ${CONFIG_ENV}]`));
  for (const leaf of leaves()) {
    const { flag, env, help, default: fallback, on, repeatable } = leaf.setting.spec;
    if (!flag || !on.some((g) => groups.includes(g))) continue;
    const option = new Option(flag, `${help} [env ${env}, file ${leaf.key}${fallback !== undefined ? `, default ${fallback}` : ''}]`);
    if (repeatable) option.argParser((value: string, previous: string | undefined) => (previous === undefined ? value : `${previous},${value}`));
    command.addOption(option);
  }
  return command;
}

/** The configuration of a command, from its parsed options. */
export function configFromOptions(options: Record<string, unknown>): LoadedConfig {
  const flags: Record<string, string | undefined> = {};
  for (const leaf of leaves()) {
    if (!leaf.setting.spec.flag) continue;
    const value = options[optionName(leaf)];
    if (typeof value === 'string') flags[leaf.key] = value;
  }
  const file = typeof options.config === 'string' ? options.config : process.env[CONFIG_ENV] || undefined;
  return loadConfig({ file, env: process.env, flags });
}

const optionNames = new Map<string, string>();
function optionName(leaf: Leaf): string {
  let name = optionNames.get(leaf.key);
  if (!name) optionNames.set(leaf.key, (name = new Option(leaf.setting.spec.flag!).attributeName()));
  return name;
}

export class ConfigError extends Error {}

export function loadConfig(inputs: ConfigInputs): LoadedConfig {
  const { file } = inputs;
  const lines = new LineCounter();
  let doc: Document | undefined;
  let raw: Raw = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
    const bad = doc.errors[0];
    if (bad) {
      const at = bad.linePos?.[0];
      throw new ConfigError(`${file}:${at ? `${at.line}:${at.col}` : '1:1'}: invalid YAML: ${bad.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) {
      if (!isPlainObject(value)) throw new ConfigError(`${file}:1:1: expected a mapping of sections (http, database, storage, …)`);
      raw = value;
    }
  }

  const sources = new Map<string, Source>();
  for (const leaf of leaves()) {
    const parent = sectionOf(raw, leaf.path);
    if (!parent) continue; // a section that is not a mapping: the schema reports it at its place in the file
    const name = leaf.path[leaf.path.length - 1]!;
    const { env, default: fallback } = leaf.setting.spec;
    const flag = inputs.flags[leaf.key];
    const fromEnv = env === undefined ? undefined : inputs.env[env];
    if (flag !== undefined) set(parent, name, flag, 'flag');
    else if (fromEnv !== undefined && fromEnv !== '') set(parent, name, fromEnv, 'env');
    else if (parent[name] !== undefined) sources.set(leaf.key, 'file');
    else if (fallback !== undefined) set(parent, name, fallback, 'default');
    function set(section: Raw, key: string, value: string, source: Source) {
      section[key] = value;
      sources.set(leaf.key, source);
    }
  }

  const result = configSchema().safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(describeIssue(issue, raw, sources, file, doc, lines));
  }
  return { config: result.data as Config, raw, file };
}

/** The section object a leaf lives in, created where missing; null if the file has a non-mapping there. */
function sectionOf(raw: Raw, path: string[]): Raw | null {
  let node = raw;
  for (const name of path.slice(0, -1)) {
    if (node[name] === undefined || node[name] === null) node[name] = {};
    const next = node[name];
    if (!isPlainObject(next)) return null;
    node = next;
  }
  return node;
}

function isPlainObject(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeIssue(issue: z.core.$ZodIssue, raw: Raw, sources: Map<string, Source>, file: string | undefined, doc: Document | undefined, lines: LineCounter): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const expected = Object.keys(sectionShape(path)).join(', ');
    const where = locate(doc, lines, path, key) ?? '1:1';
    return `${file}:${where}: unknown key ${[...path, key].join('.')}${expected ? ` (expected one of: ${expected})` : ''}`;
  }
  const key = leafKey(path);
  const source = key ? sources.get(key) : 'file';
  const leaf = key ? leaves().find((l) => l.key === key) : undefined;
  if (leaf && (source === 'flag' || source === 'env' || source === 'default')) {
    const name = source === 'env' ? leaf.setting.spec.env : source === 'flag' ? leaf.setting.spec.flag!.split(' ')[0] : `default of ${leaf.key}`;
    const value = leaf.path.reduce<unknown>((node, p) => (isPlainObject(node) ? node[p] : undefined), raw);
    return `invalid ${name} ${String(value)}: ${issue.message}`;
  }
  const where = locate(doc, lines, path) ?? '1:1';
  return `${file}:${where}: ${path.join('.') || 'top level'}: ${issue.message}`;
}

/** The setting key an issue path points into (a secret's `{file: …}` is below its setting). */
function leafKey(path: string[]): string | undefined {
  const all = leaves();
  for (let n = path.length; n > 0; n--) {
    const key = path.slice(0, n).join('.');
    if (all.some((l) => l.key === key)) return key;
  }
  return undefined;
}

function sectionShape(path: string[]): Record<string, unknown> {
  const names: Record<string, unknown> = {};
  for (const leaf of leaves()) {
    if (path.every((p, i) => leaf.path[i] === p) && leaf.path.length > path.length) names[leaf.path[path.length]!] = true;
  }
  return names;
}

/** `LINE:COL` of the node at `path` (or of the key `key` in the mapping there), as near as the document allows. */
function locate(doc: Document | undefined, lines: LineCounter, path: string[], key?: string): string | undefined {
  if (!doc) return undefined;
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (!node || typeof node !== 'object') continue;
    let offset: number | undefined;
    if (key !== undefined && n === path.length && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
      offset = pair && isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    }
    offset ??= (node as { range?: [number, number, number] }).range?.[0];
    if (offset !== undefined) {
      const { line, col } = lines.linePos(offset);
      return `${line}:${col}`;
    }
  }
  return undefined;
}

/** The effective configuration as YAML in table order, secrets given inline hidden (references `{file:…}`, `{env:…}` shown as they are). */
export function printConfig(raw: Raw): string {
  const out: Raw = {};
  for (const leaf of leaves()) {
    const name = leaf.path[leaf.path.length - 1]!;
    let value = sectionOf(raw, leaf.path)?.[name];
    if (value === undefined) continue;
    const hide = leaf.setting.spec.secret as ((value: unknown) => unknown) | undefined;
    if (hide && (typeof value === 'string' || Array.isArray(value))) value = hide(value);
    sectionOf(out, leaf.path)![name] = value;
  }
  return stringify(out);
}
