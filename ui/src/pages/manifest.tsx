import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { api, type Descriptor } from '../api.js';
import { ConfirmButton, ErrorBox, PageTitle, useLoad } from '../components.js';
import { bytes, href, shortDigest, when } from '../format.js';

export function ManifestPage({ name, reference }: { name: string; reference: string }) {
  const { data: m, error } = useLoad(() => api.manifest(name, reference), [name, reference]);
  const [copied, setCopied] = useState('');
  const pull = m ? `${location.host}/${name}@${m.digest}` : '';
  const command = `docker pull ${pull}`;
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href.repositories()}>Repositories</a> / <a href={href.repository(name)}>{name}</a> / <span aria-current="page">{reference.includes(':') ? shortDigest(reference) : reference}</span>
      </nav>
      <PageTitle>
        {name}
        {reference.includes(':') ? '@' + shortDigest(reference) : ':' + reference}
      </PageTitle>
      <ErrorBox error={error} />
      {m && (
        <>
          <dl class="facts">
            <dt>Digest</dt>
            <dd>
              <code>{m.digest}</code>
            </dd>
            <dt>Kind</dt>
            <dd>
              {m.kind} (<code>{m.mediaType}</code>)
            </dd>
            {m.artifactType && (
              <>
                <dt>Artifact type</dt>
                <dd>
                  <code>{m.artifactType}</code>
                </dd>
              </>
            )}
            <dt>Size</dt>
            <dd>{bytes(m.size)} manifest</dd>
            <dt>Pushed</dt>
            <dd>{when(m.pushedAt)}</dd>
            <dt>Tags</dt>
            <dd>{m.tags.join(', ') || '—'}</dd>
            {m.subject && (
              <>
                <dt>Subject</dt>
                <dd>
                  <a href={href.manifest(name, m.subject)}>
                    <code>{shortDigest(m.subject)}</code>
                  </a>
                </dd>
              </>
            )}
          </dl>
          <div class="pull">
            <label for="pull">Pull command</label>
            <input id="pull" readOnly value={command} onFocus={(e) => e.currentTarget.select()} />
            <button
              type="button"
              onClick={async () => {
                try {
                  await navigator.clipboard.writeText(command);
                  setCopied('Copied the pull command.');
                } catch {
                  (document.getElementById('pull') as HTMLInputElement | null)?.select();
                  setCopied('Select the command and copy it with Ctrl+C.');
                }
              }}
            >
              Copy
            </button>
            <span role="status">{copied}</span>
          </div>
          {m.can.delete && (
            <ConfirmButton
              label="Delete manifest"
              question={`Delete ${name}@${shortDigest(m.digest)} and every tag that points at it?`}
              confirm="Delete manifest"
              onConfirm={async () => {
                await api.deleteManifest(name, m.digest);
                location.hash = href.repository(name);
              }}
            />
          )}
          {m.manifests.length > 0 && (
            <section aria-labelledby="platforms">
              <h2 id="platforms">Platforms</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Platform</th>
                    <th scope="col">Digest</th>
                    <th scope="col" class="num">Size</th>
                  </tr>
                </thead>
                <tbody>
                  {m.manifests.map((c) => (
                    <tr key={c.digest}>
                      <td>{c.platform ?? c.artifactType ?? '—'}</td>
                      <td>
                        <a href={href.manifest(name, c.digest)}>
                          <code>{shortDigest(c.digest)}</code>
                        </a>
                      </td>
                      <td class="num">{bytes(c.size)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
          )}
          {m.config && !m.config.shown && (
            <section aria-labelledby="config">
              <h2 id="config">Image configuration</h2>
              <p>
                The configuration ({bytes(m.config.size)}, <code>{m.config.digest}</code>) is kept in the object store, not in the database, so this page does
                not show it.
              </p>
            </section>
          )}
          {m.config && m.config.shown && (
            <section aria-labelledby="config">
              <h2 id="config">Image configuration</h2>
              <dl class="facts">
                <dt>Platform</dt>
                <dd>{m.config.platform ?? '—'}</dd>
                <dt>Created</dt>
                <dd>{when(m.config.created)}</dd>
                <dt>Entrypoint</dt>
                <dd>
                  <code>{m.config.entrypoint ? JSON.stringify(m.config.entrypoint) : '—'}</code>
                </dd>
                <dt>Cmd</dt>
                <dd>
                  <code>{m.config.cmd ? JSON.stringify(m.config.cmd) : '—'}</code>
                </dd>
                {m.config.user && (
                  <>
                    <dt>User</dt>
                    <dd>{m.config.user}</dd>
                  </>
                )}
                {m.config.workingDir && (
                  <>
                    <dt>Working directory</dt>
                    <dd>{m.config.workingDir}</dd>
                  </>
                )}
                {m.config.exposedPorts.length > 0 && (
                  <>
                    <dt>Ports</dt>
                    <dd>{m.config.exposedPorts.join(', ')}</dd>
                  </>
                )}
              </dl>
              {m.config.env.length > 0 && (
                <>
                  <h3>Environment</h3>
                  <ul class="mono">
                    {m.config.env.map((e) => (
                      <li key={e}>{e}</li>
                    ))}
                  </ul>
                </>
              )}
              <KeyValues title="Labels" values={m.config.labels} />
              {m.config.history.length > 0 && (
                <>
                  <h3>History</h3>
                  <ol class="mono">
                    {m.config.history.map((h, i) => (
                      <li key={i}>
                        {h.createdBy ?? h.comment ?? '—'}
                        {h.emptyLayer ? ' (no layer)' : ''}
                      </li>
                    ))}
                  </ol>
                </>
              )}
            </section>
          )}
          {m.layers.length > 0 && (
            <section aria-labelledby="layers">
              <h2 id="layers">{m.kind === 'image' ? 'Layers' : 'Blobs'}</h2>
              <Descriptors items={m.layers} />
            </section>
          )}
          <KeyValues title="Annotations" values={m.annotations} />
          <section aria-labelledby="referrers">
            <h2 id="referrers">Referrers</h2>
            {m.referrers.length === 0 && <p>No signatures, SBOMs or attestations refer to this manifest.</p>}
            {m.referrers.map((g) => (
              <div key={g.artifactType}>
                <h3>
                  <code>{g.artifactType}</code> ({g.items.length})
                </h3>
                <ul>
                  {g.items.map((r) => (
                    <li key={r.digest}>
                      <a href={href.manifest(name, r.digest)}>
                        <code>{shortDigest(r.digest)}</code>
                      </a>{' '}
                      {bytes(r.size)}
                    </li>
                  ))}
                </ul>
              </div>
            ))}
          </section>
        </>
      )}
    </>
  );
}

function Descriptors({ items }: { items: Descriptor[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">Digest</th>
          <th scope="col">Media type</th>
          <th scope="col" class="num">Size</th>
        </tr>
      </thead>
      <tbody>
        {items.map((l, i) => (
          <tr key={l.digest + i}>
            <td>{i + 1}</td>
            <td>
              <code title={l.digest}>{shortDigest(l.digest)}</code>
            </td>
            <td>
              <code>{l.mediaType}</code>
            </td>
            <td class="num">{bytes(l.size)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function KeyValues({ title, values }: { title: string; values: Record<string, string> }) {
  const entries = Object.entries(values);
  if (entries.length === 0) return null;
  return (
    <>
      <h3>{title}</h3>
      <dl class="facts mono">
        {entries.map(([k, v]) => (
          <Fragment key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </Fragment>
        ))}
      </dl>
    </>
  );
}
