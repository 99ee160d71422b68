/** The access policy: YAML format, pattern matching, most-specific-rule-wins, groups, admins. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Policy } from '../../src/auth/policy.js';
import { ROOT } from '../helpers/registry.js';

const YAML = `
groups:
  developers: [alice, bob]
  ops: [olga]
admins:
  users: [root]
  groups: [ops]
rules:
  - repository: "**"
    anonymous: [pull]
  - repository: "team-a/**"
    authenticated: [pull]
    groups:
      developers: [pull, push]
    users:
      ci: "pull,push,delete"
  - repository: "team-a/secret/*"
    users:
      alice: [pull]
  - repository: "team-a/secret/keys"
    users:
      bob: ["*"]
  - repository: "*/app-*"
    authenticated: [pull, push]
  - repository: "private"
    users:
      carol: [pull]
`;

describe('access policy', () => {
  const policy = Policy.fromYaml(YAML, 'test.yaml');
  const can = (user: string | null, name: string) => [...policy.actions(user, name)].sort().join(',');

  it('anonymous pull comes from the catch-all rule, nothing more', () => {
    assert.equal(can(null, 'library/alpine'), 'pull');
    assert.equal(can(null, 'x'), 'pull');
    assert.equal(can('alice', 'library/alpine'), 'pull');
  });

  it('the most specific rule wins and replaces less specific ones', () => {
    assert.equal(policy.ruleFor('team-a/web'), 'team-a/**');
    assert.equal(can(null, 'team-a/web'), '', 'team-a/** has no anonymous grant, so ** no longer applies');
    assert.equal(can('alice', 'team-a/web'), 'pull,push');
    assert.equal(can('dave', 'team-a/web'), 'pull', 'authenticated');
    assert.equal(can('ci', 'team-a/web/deep/name'), 'delete,pull,push');
    assert.equal(policy.ruleFor('team-a/secret/x'), 'team-a/secret/*');
    assert.equal(can('alice', 'team-a/secret/x'), 'pull');
    assert.equal(can('bob', 'team-a/secret/x'), '', 'the developers grant of team-a/** does not reach here');
    assert.equal(policy.ruleFor('team-a/secret/keys'), 'team-a/secret/keys', 'an exact name beats *');
    assert.equal(can('bob', 'team-a/secret/keys'), 'delete,pull,push');
    assert.equal(can('alice', 'team-a/secret/keys'), '');
  });

  it('* is one segment (or part of one), ** any number including none', () => {
    assert.equal(policy.ruleFor('team-a'), 'team-a/**', '** matches zero segments');
    assert.equal(policy.ruleFor('team-a/secret/x/y'), 'team-a/**', '* does not cross a /');
    assert.equal(policy.ruleFor('team-b/app-web'), '*/app-*');
    assert.equal(policy.ruleFor('team-b/app-web/x'), '**');
    assert.equal(policy.ruleFor('team-a/app-web'), 'team-a/**', 'a literal first segment beats *');
    assert.equal(can('dave', 'team-b/app-web'), 'pull,push');
  });

  it('admins (users and groups) may do everything everywhere', () => {
    assert.ok(policy.isAdmin('root'));
    assert.ok(policy.isAdmin('olga'));
    assert.ok(!policy.isAdmin('alice'));
    assert.ok(!policy.isAdmin(null));
    assert.equal(can('olga', 'team-a/secret/keys'), 'delete,pull,push');
    assert.equal(can('root', 'private'), 'delete,pull,push');
  });

  it('a rule without anonymous grants keeps anonymous callers out', () => {
    assert.equal(can(null, 'private'), '');
    assert.equal(can('carol', 'private'), 'pull');
    assert.ok(policy.anonymousMayPullSomething());
  });

  it('--htpasswd alone: every authenticated user is an admin, anonymous callers get nothing', () => {
    const p = Policy.authenticatedFullAccess();
    assert.ok(p.isAdmin('anyone'));
    assert.equal([...p.actions('anyone', 'a/b')].sort().join(','), 'delete,pull,push');
    assert.equal(p.actions(null, 'a/b').size, 0);
    assert.ok(!p.anonymousMayPullSomething());
  });

  it('the order of rules in the file does not matter', () => {
    const reversed = Policy.fromYaml(
      `rules:\n  - repository: "a/b"\n    anonymous: [pull, push]\n  - repository: "a/*"\n    anonymous: [pull]\n  - repository: "**"\n    anonymous: []\n`,
    );
    const forward = Policy.fromYaml(
      `rules:\n  - repository: "**"\n    anonymous: []\n  - repository: "a/*"\n    anonymous: [pull]\n  - repository: "a/b"\n    anonymous: [pull, push]\n`,
    );
    for (const p of [reversed, forward]) {
      assert.equal([...p.actions(null, 'a/b')].sort().join(','), 'pull,push');
      assert.equal([...p.actions(null, 'a/c')].join(','), 'pull');
      assert.equal(p.actions(null, 'b').size, 0);
    }
  });

  it('rejects configuration mistakes with a message naming the key', () => {
    const bad: [string, RegExp][] = [
      ['rules:\n  - repository: "a"\n    anonymous: [pul]\n', /rules\.0\.anonymous.*unknown action "pul"/],
      ['rules:\n  - repository: "a"\n    anonymus: [pull]\n', /rules\.0.*anonymus/],
      ['rules:\n  - repository: "a"\n    groups: {nobody: [pull]}\n', /group "nobody" is not defined/],
      ['rules:\n  - repository: "a"\n  - repository: "a"\n', /already exists/],
      ['rules:\n  - repository: "a//b"\n', /empty path segment/],
      ['rules:\n  - repository: "A/B"\n', /invalid characters/],
      ['rules:\n  - repository: "a/**b"\n', /whole path segment/],
      ['admins:\n  groups: [ghosts]\n', /admins\.groups.*ghosts/],
      ['users: [a]\n', /users/],
      ['rules: [\n', /invalid YAML/],
    ];
    for (const [text, message] of bad) assert.throws(() => Policy.fromYaml(text, 'x.yaml'), message, text);
  });

  it('the example of docs/auth.md keeps everything below team-a/secret/ to its rule: ** covers nested names, * does not', async () => {
    const doc = await readFile(join(ROOT, 'docs/auth.md'), 'utf8');
    const example = /```yaml\n(# \/etc\/portfolio\/access\.yaml[\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(example, 'the policy example of docs/auth.md');
    const documented = Policy.fromYaml(example, 'docs/auth.md');
    for (const name of ['team-a/secret/x', 'team-a/secret/x/y', 'team-a/secret/x/y/z']) {
      assert.equal([...documented.actions('alice', name)].join(','), 'pull', `alice reads ${name}`);
      assert.equal(documented.actions('bob', name).size, 0, `a developer gets nothing in ${name}`);
      assert.equal(documented.actions('dave', name).size, 0, `an authenticated user gets nothing in ${name}`);
    }
    const one = Policy.fromYaml('rules:\n  - repository: "s/**"\n    authenticated: [pull]\n  - repository: "s/secret/*"\n    users: {alice: [pull]}\n');
    assert.equal(one.ruleFor('s/secret/x'), 's/secret/*');
    assert.equal(one.ruleFor('s/secret/x/y'), 's/**', 'a nested name is not covered by *');
    assert.equal([...one.actions('dave', 's/secret/x/y')].join(','), 'pull', 'so the wider rule lets others in there');
    const any = Policy.fromYaml('rules:\n  - repository: "s/**"\n    authenticated: [pull]\n  - repository: "s/secret/**"\n    users: {alice: [pull]}\n');
    assert.equal(any.ruleFor('s/secret/x/y'), 's/secret/**', 'a nested name is covered by **');
    assert.equal(any.actions('dave', 's/secret/x/y').size, 0);
  });

  it('derives a superset of what a user may pull for the catalog: exact names and literal prefixes', () => {
    assert.equal(policy.pullFilter('root'), null, 'admins: every name');
    assert.equal(policy.pullFilter(null), null, 'anonymous callers may pull through "**": no narrowing');
    const narrow = Policy.fromYaml('rules:\n  - repository: "team/**"\n    users: {dana: [pull]}\n  - repository: "x/app-*/y"\n    users: {dana: [pull]}\n  - repository: "solo"\n    users: {dana: [pull]}\n  - repository: "other/*"\n    users: {eve: [pull]}\n  - repository: "team/hidden"\n    users: {eve: [pull]}\n');
    assert.deepEqual(narrow.pullFilter('dana'), { names: ['solo'], prefixes: ['x/app-', 'team'] });
    assert.deepEqual(narrow.pullFilter('nobody'), { names: [], prefixes: [] });
    for (const name of ['team', 'team/a/b', 'x/app-1/y', 'solo']) assert.ok(narrow.allows('dana', name, 'pull'), name);
    assert.ok(!narrow.allows('dana', 'team/hidden', 'pull'), 'the exact check still removes what a more specific rule refuses');
  });
});
