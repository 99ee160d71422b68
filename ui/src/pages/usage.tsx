import { api } from '../api.js';
import { ErrorBox, PageTitle, Pager, useLoad, usePager } from '../components.js';
import { bytes, href, when } from '../format.js';

export function UsagePage() {
  const pager = usePager();
  const { data, error } = useLoad(() => api.usage(pager.cursor), [pager.cursor]);
  return (
    <>
      <PageTitle>Usage</PageTitle>
      <ErrorBox error={error} />
      {data && (
        <>
          <p class="summary">
            {bytes(data.storedBytes)} stored in {data.blobs} blobs across {data.repositoryCount} repositories (each blob counted once).
          </p>
          <table>
            <caption class="visually-hidden">Bytes by repository</caption>
            <thead>
              <tr>
                <th scope="col">Repository</th>
                <th scope="col" class="num">Bytes</th>
                <th scope="col" class="num">Tags</th>
                <th scope="col" class="num">Manifests</th>
                <th scope="col">Last push</th>
              </tr>
            </thead>
            <tbody>
              {data.repositories.map((r) => (
                <tr key={r.name}>
                  <td>
                    <a href={href.repository(r.name)}>{r.name}</a>
                  </td>
                  <td class="num">{bytes(r.bytes)}</td>
                  <td class="num">{r.tags}</td>
                  <td class="num">{r.manifests}</td>
                  <td>{when(r.lastPush)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager pager={pager} next={data.next} label="Usage" />
          {data.events.length > 0 && (
            <>
              <h2>Event delivery</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Sink</th>
                    <th scope="col" class="num">Pending</th>
                    <th scope="col" class="num">Failed</th>
                    <th scope="col">Oldest pending</th>
                  </tr>
                </thead>
                <tbody>
                  {data.events.map((e) => (
                    <tr key={e.sink}>
                      <td>{e.sink}</td>
                      <td class="num">{e.pending}</td>
                      <td class="num">{e.failed}</td>
                      <td>{when(e.oldestPendingAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </>
      )}
    </>
  );
}
