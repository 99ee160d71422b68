import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ConfirmButton, ErrorBox, PageTitle, Pager, useLoad, usePager } from '../components.js';
import { bytes, href, shortDigest, when } from '../format.js';

export function RepositoryPage({ name }: { name: string }) {
  const [sort, setSort] = useState<'name' | 'pushed'>('name');
  const pager = usePager();
  const repo = useLoad(() => api.repository(name), [name]);
  const tags = useLoad(() => api.tags(name, sort, pager.cursor), [name, sort, pager.cursor]);
  const [notice, setNotice] = useState('');
  const sortBy = (s: 'name' | 'pushed') => {
    pager.reset();
    setSort(s);
  };
  const canDelete = repo.data?.can.delete ?? false;
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href.repositories()}>Repositories</a> / <span aria-current="page">{name}</span>
      </nav>
      <PageTitle>{name}</PageTitle>
      <ErrorBox error={repo.error} />
      {repo.data && (
        <p class="summary">
          {repo.data.tags} tags · {repo.data.manifests} manifests · {bytes(repo.data.bytes)} · last push {when(repo.data.lastPush)}
        </p>
      )}
      {repo.data?.can.deleteRepository && (
        <ConfirmButton
          label="Delete repository"
          question={`Delete the repository ${name} with all its tags and manifests?`}
          confirm="Delete repository"
          onConfirm={async () => {
            await api.deleteRepository(name);
            location.hash = href.repositories();
          }}
        />
      )}
      <p role="status" class="notice">
        {notice}
      </p>
      <h2>Tags</h2>
      <ErrorBox error={tags.error} />
      {tags.data && tags.data.tags.length === 0 && <p>No tags.</p>}
      {tags.data && tags.data.tags.length > 0 && (
        <table>
          <caption class="visually-hidden">Tags of {name}</caption>
          <thead>
            <tr>
              <th scope="col" aria-sort={sort === 'name' ? 'ascending' : 'none'}>
                <button type="button" class="sort" onClick={() => sortBy('name')}>
                  Tag
                </button>
              </th>
              <th scope="col">Digest</th>
              <th scope="col" class="num">Size</th>
              <th scope="col">Platforms</th>
              <th scope="col" aria-sort={sort === 'pushed' ? 'descending' : 'none'}>
                <button type="button" class="sort" onClick={() => sortBy('pushed')}>
                  Pushed
                </button>
              </th>
              <th scope="col">Last pulled</th>
              {canDelete && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {tags.data.tags.map((t) => (
              <tr key={t.name}>
                <td>
                  <a href={href.manifest(name, t.name)}>{t.name}</a>
                  {t.immutable && (
                    <span class="badge" title={`immutable: rule ${t.immutable.repositories} / ${t.immutable.tags}`}>
                      immutable
                    </span>
                  )}
                </td>
                <td>
                  <code title={t.digest}>{shortDigest(t.digest)}</code>
                </td>
                <td class="num">{bytes(t.size)}</td>
                <td>{t.platforms.join(', ') || '—'}</td>
                <td>{when(t.pushedAt)}</td>
                <td>{t.lastPulledAt ? when(t.lastPulledAt) : 'never'}</td>
                {canDelete && !t.immutable && (
                  <td>
                    <ConfirmButton
                      label={`Delete tag ${t.name}`}
                      question={`Delete the tag ${name}:${t.name}? The manifest stays until collected.`}
                      confirm="Delete tag"
                      onConfirm={async () => {
                        await api.deleteTag(name, t.name);
                        setNotice(`Deleted tag ${t.name}.`);
                        tags.reload();
                        repo.reload();
                      }}
                    />
                  </td>
                )}
                {canDelete && t.immutable && <td>—</td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pager={pager} next={tags.data?.next ?? null} label="Tag" />
    </>
  );
}
