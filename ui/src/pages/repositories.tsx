import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorBox, PageTitle, Pager, useLoad, usePager } from '../components.js';
import { bytes, href, when } from '../format.js';

export function Repositories() {
  const [q, setQ] = useState('');
  const [match, setMatch] = useState('substring');
  const [applied, setApplied] = useState({ q: '', match: 'substring' });
  const pager = usePager();
  const { data, error } = useLoad(() => api.repositories(applied.q, applied.match, pager.cursor), [applied, pager.cursor]);
  return (
    <>
      <PageTitle>Repositories</PageTitle>
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          pager.reset();
          setApplied({ q, match });
        }}
      >
        <label for="q">Name</label>
        <input id="q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} placeholder="e.g. team-a/app" />
        <label for="match">Match</label>
        <select id="match" value={match} onChange={(e) => setMatch(e.currentTarget.value)}>
          <option value="substring">contains</option>
          <option value="prefix">starts with</option>
        </select>
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={error} />
      {data && data.repositories.length === 0 && <p>No repositories{applied.q ? ` match “${applied.q}”` : ''}.</p>}
      {data && data.repositories.length > 0 && (
        <table>
          <caption class="visually-hidden">Repositories</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col" class="num">Tags</th>
              <th scope="col" class="num">Size</th>
              <th scope="col">Last push</th>
            </tr>
          </thead>
          <tbody>
            {data.repositories.map((r) => (
              <tr key={r.name}>
                <td>
                  <a href={href.repository(r.name)}>{r.name}</a>
                </td>
                <td class="num">{r.tags}</td>
                <td class="num">{bytes(r.bytes)}</td>
                <td>{when(r.lastPush)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pager={pager} next={data?.next ?? null} label="Repository" />
    </>
  );
}
