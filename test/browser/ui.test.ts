/**
 * The web interface in a real browser: Debian's Chromium driven by playwright-core, against a
 * registry process with users and an access policy. Screenshots of the main pages go to
 * docs/screenshots/ (shown in the README).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { basicAuth, call, pushImageWith, writeHtpasswd } from '../auth/util.js';
import { blob, image, index, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, sha256, type Image } from '../helpers/oci.js';
import { ROOT, startRegistry, type RunningRegistry } from '../helpers/registry.js';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN = { authorization: basicAuth('root', 'rootpw') };
const SCREENSHOTS = join(ROOT, 'docs/screenshots');
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** An image whose config has what the detail page shows: entrypoint, cmd, env, labels, history. */
function richImage(architecture: string): Image {
  const config = blob(
    JSON.stringify({
      architecture,
      os: 'linux',
      created: '2026-11-30T12:00:00Z',
      config: {
        Entrypoint: ['/usr/bin/web'],
        Cmd: ['--port', '8080'],
        Env: ['PATH=/usr/local/bin:/usr/bin', 'WEB_MODE=production'],
        Labels: { 'org.opencontainers.image.source': 'https://example.org/web', 'org.opencontainers.image.version': '1.4.2' },
        ExposedPorts: { '8080/tcp': {} },
        WorkingDir: '/srv',
      },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [{ created_by: '/bin/sh -c #(nop) ADD file:base in /' }, { created_by: 'COPY web /usr/bin/web' }, { created_by: 'ENV WEB_MODE=production', empty_layer: true }],
    }),
  );
  const layers = [blob(), blob()];
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
      annotations: { 'org.opencontainers.image.title': 'web' },
    }),
  );
  return { config, layers, manifest, digest: sha256(manifest), mediaType: OCI_MANIFEST };
}

describe('web interface in Chromium', () => {
  let registry: RunningRegistry;
  let url: string;
  let context: BrowserContext;
  let profile: string;
  const web = richImage('amd64');
  const webArm = richImage('arm64');

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portfolio-ui-'));
    await writeHtpasswd(join(dir, 'htpasswd'), { root: 'rootpw', reader: 'readerpw' });
    await writeFile(join(dir, 'policy.yaml'), 'admins:\n  users: [root]\nrules:\n  - repository: "**"\n    anonymous: [pull]\n    users:\n      reader: [pull]\n');
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd'), '--access-policy', join(dir, 'policy.yaml')] });
    url = registry.url;
    // An image with two tags, a multi-platform index, an artifact with referrers, and a few more repositories.
    assert.equal((await pushImageWith(url, 'apps/web', web, 'v1', ADMIN)).status, 201);
    assert.equal((await pushImageWith(url, 'apps/web', webArm, 'v2', ADMIN)).status, 201);
    const idx = index([web, webArm].map((i) => ({ digest: i.digest, size: i.manifest.length, mediaType: OCI_MANIFEST })));
    for (const child of [web, webArm]) assert.equal((await pushImageWith(url, 'apps/multi', child, child.digest, ADMIN)).status, 201);
    const put = await call(`${url}/v2/apps/multi/manifests/latest`, { method: 'PUT', headers: { ...ADMIN, 'content-type': idx.mediaType }, body: idx.manifest });
    assert.equal(put.status, 201, put.text);
    const subject = { mediaType: OCI_MANIFEST, digest: web.digest, size: web.manifest.length };
    const sig = image({ artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject, configMediaType: 'application/vnd.oci.empty.v1+json' });
    const sbom = image({ artifactType: 'application/spdx+json', subject, configMediaType: 'application/vnd.oci.empty.v1+json' });
    for (const a of [sig, sbom]) assert.equal((await pushImageWith(url, 'apps/web', a, a.digest, ADMIN)).status, 201);
    for (const name of ['tools/builder', 'tools/linter', 'library/alpine']) assert.equal((await pushImageWith(url, name, image(), 'latest', ADMIN)).status, 201);

    profile = await mkdtemp(join(tmpdir(), 'portfolio-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 800 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await context?.close();
    await registry?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function freshPage(): Promise<Page> {
    await context.clearCookies();
    const page = await context.newPage();
    // Nothing but the registry: a request anywhere else fails the test.
    await page.route('**/*', (route) => (route.request().url().startsWith(url) ? route.continue() : route.abort()));
    return page;
  }

  async function axeCheck(page: Page, what: string): Promise<void> {
    await page.evaluate(await readFile(AXE, 'utf8'));
    const violations = await page.evaluate(async () => {
      const result = await (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe.run();
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
    });
    const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(serious, [], `${what}: serious or critical accessibility violations`);
  }

  async function login(page: Page, user: string, password: string): Promise<void> {
    await page.goto(`${url}/ui/#/login`);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText(`Signed in as ${user}`).waitFor();
  }

  it('browses anonymously: search, a repository, a manifest with config and referrers; no delete controls', async () => {
    const page = await freshPage();
    const external: string[] = [];
    page.on('request', (r) => !r.url().startsWith(url) && external.push(r.url()));
    await page.goto(`${url}/ui/`);
    await page.getByRole('link', { name: 'apps/web' }).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'repositories.png') });
    await axeCheck(page, 'repositories');

    await page.getByLabel('Name').fill('tool');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'apps/web' }).waitFor({ state: 'detached' });
    assert.deepEqual(await page.getByRole('table').getByRole('link').allInnerTexts(), ['tools/builder', 'tools/linter'], 'search narrows the list');

    await page.goto(`${url}/ui/#/r/apps/multi`);
    const row = page.getByRole('row', { name: /latest/ });
    await row.waitFor();
    assert.match(await row.innerText(), /linux\/amd64, linux\/arm64/);

    await page.goto(`${url}/ui/#/r/apps/web`);
    await page.getByRole('link', { name: 'v1' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /Delete/ }).count(), 0, 'anonymous callers get no delete control');
    await page.screenshot({ path: join(SCREENSHOTS, 'repository.png') });
    await axeCheck(page, 'repository');

    await page.getByRole('link', { name: 'v1' }).click();
    await page.getByRole('heading', { name: 'Image configuration' }).waitFor();
    const text = await page.locator('main').innerText();
    assert.match(text, /\["\/usr\/bin\/web"\]/);
    assert.match(text, /WEB_MODE=production/);
    assert.match(text, /org\.opencontainers\.image\.version/);
    assert.match(text, /COPY web \/usr\/bin\/web/);
    assert.match(text, /application\/spdx\+json \(1\)/);
    assert.match(text, /application\/vnd\.dev\.cosign\.artifact\.sig\.v1\+json \(1\)/);
    assert.equal(await page.getByLabel('Pull command').inputValue(), `docker pull ${new URL(url).host}/apps/web@${web.digest}`);
    assert.equal(await page.getByRole('button', { name: /Delete/ }).count(), 0);
    await page.screenshot({ path: join(SCREENSHOTS, 'manifest.png'), fullPage: true });
    await axeCheck(page, 'manifest');
    assert.deepEqual(external, [], 'no request leaves the registry');
    await page.close();
  });

  it('a user without delete rights sees no delete control, and a forced request gets 403', async () => {
    const page = await freshPage();
    await login(page, 'reader', 'readerpw');
    await page.goto(`${url}/ui/#/r/apps/web`);
    await page.getByRole('link', { name: 'v1' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /Delete/ }).count(), 0);
    const status = await page.evaluate(async () => {
      const csrf = /portfolio_csrf=([^;]*)/.exec(document.cookie)?.[1] ?? '';
      const res = await fetch('/_portfolio/api/v1/repositories/apps/web/tags/v1', { method: 'DELETE', headers: { 'x-portfolio-csrf': csrf } });
      return res.status;
    });
    assert.equal(status, 403);
    assert.equal((await call(`${url}/v2/apps/web/manifests/v1`, { headers: ADMIN })).status, 200, 'the tag is still there');
    await page.close();
  });

  it('logs in, deletes a tag after confirming, and the registry API no longer has it', async () => {
    const page = await freshPage();
    await login(page, 'root', 'rootpw');
    await page.goto(`${url}/ui/#/r/apps/web`);
    await page.getByRole('button', { name: 'Delete tag v2' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Delete the tag apps/web:v2?', { exact: false }).waitFor();
    await dialog.getByRole('button', { name: 'Delete tag' }).click();
    await page.getByText('Deleted tag v2.').waitFor();
    await page.getByRole('link', { name: 'v2', exact: true }).waitFor({ state: 'detached' });
    assert.equal((await call(`${url}/v2/apps/web/manifests/v2`, { headers: ADMIN })).status, 404);
    assert.equal((await call(`${url}/v2/apps/web/manifests/v1`, { headers: ADMIN })).status, 200);

    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage' }).waitFor();
    await page.getByRole('link', { name: 'apps/web' }).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'usage.png') });
    await axeCheck(page, 'usage');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('link', { name: 'Log in' }).waitFor();
    await page.close();
  });

  it('works from the keyboard alone: repositories, a repository, a manifest', async () => {
    const page = await freshPage();
    await page.goto(`${url}/ui/`);
    await page.getByRole('link', { name: 'apps/web' }).waitFor();
    /** Presses Tab until the focused element's text is `text`; fails after many presses. */
    const tabTo = async (text: string) => {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        const focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
        if (focused === text) return;
      }
      assert.fail(`Tab never reached ${text}`);
    };
    await tabTo('apps/web');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'apps/web', level: 1 }).waitFor();
    // Focus moves once the page has rendered; give a busy machine a moment for that effect.
    await page.waitForFunction(() => document.activeElement?.tagName === 'H1', null, { timeout: 5000 }).catch(() => undefined);
    assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'H1', 'the new page takes focus at its heading');
    await tabTo('v1');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Image configuration' }).waitFor();
    await tabTo('Copy');
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: /pull command|Ctrl\+C/ }).waitFor();
    await page.close();
  });
});
