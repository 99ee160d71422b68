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
          <p class="summary">
            Garbage collection:{' '}
            {!data.gc
              ? 'no background pass has run in this process yet.'
              : data.gc.error
                ? `the last pass failed ${when(data.gc.at)}: ${data.gc.error}`
                : `last pass ${when(data.gc.at)}, ${data.gc.report?.manifestsDeleted ?? 0} manifests and ${data.gc.report?.blobsDeleted ?? 0} blobs removed, ${bytes(data.gc.report?.bytesFreed ?? 0)} freed.`}
          </p>
          {data.quotas.length > 0 && (
            <>
              <h2>Quotas</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Scope</th>
                    <th scope="col" class="num">Used</th>
                    <th scope="col" class="num">Limit</th>
                  </tr>
                </thead>
                <tbody>
                  {data.quotas.map((q) => (
                    <tr key={q.scope}>
                      <td>{q.scope}</td>
                      <td class="num">{bytes(q.used)}</td>
                      <td class="num">{bytes(q.limit)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
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
