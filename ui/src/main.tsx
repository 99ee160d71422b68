/** The web interface: a shell with the session, and hash routes to the pages. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, type SessionInfo } from './api.js';
import { ErrorBox } from './components.js';
import { href } from './format.js';
import { LoginPage } from './pages/login.js';
import { ManifestPage } from './pages/manifest.js';
import { Repositories } from './pages/repositories.js';
import { RepositoryPage } from './pages/repository.js';
import { UsagePage } from './pages/usage.js';
import './style.css';

type Route = { page: 'repositories' } | { page: 'repository'; name: string } | { page: 'manifest'; name: string; reference: string } | { page: 'usage' } | { page: 'login' };

/** Repository names hold neither `@` nor `:`, so `#/m/<name>@<reference>` splits at the first `@`. */
function parseRoute(hash: string): Route {
  const path = decodeURIComponent(hash.replace(/^#\/?/, ''));
  if (path.startsWith('r/')) return { page: 'repository', name: path.slice(2) };
  if (path.startsWith('m/')) {
    const at = path.indexOf('@');
    if (at > 2) return { page: 'manifest', name: path.slice(2, at), reference: path.slice(at + 1) };
  }
  if (path === 'usage') return { page: 'usage' };
  if (path === 'login') return { page: 'login' };
  return { page: 'repositories' };
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const hash = useHash();
  const route = parseRoute(hash);
  const [session, setSession] = useState<SessionInfo | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api.session().then(setSession, setError);
  }, []);
  const titles: Record<Route['page'], string> = { repositories: 'Repositories', repository: 'Repository', manifest: 'Manifest', usage: 'Usage', login: 'Log in' };
  useEffect(() => {
    const what = route.page === 'repository' || route.page === 'manifest' ? route.name : titles[route.page];
    document.title = `${what} · Portfolio`;
  }, [hash]);
  const logout = async () => {
    await api.logout();
    setSession(await api.session());
    location.hash = href.repositories();
  };
  let main;
  if (!session) main = <ErrorBox error={error} />;
  else if (route.page === 'login') main = <LoginPage onLogin={setSession} />;
  else if (!session.canBrowse)
    main = (
      <>
        <h1>Portfolio</h1>
        <p>
          This registry does not let anonymous callers browse. <a href={href.login()}>Log in</a> to see its repositories.
        </p>
      </>
    );
  else if (route.page === 'repository') main = <RepositoryPage key={route.name} name={route.name} />;
  else if (route.page === 'manifest') main = <ManifestPage key={route.name + '@' + route.reference} name={route.name} reference={route.reference} />;
  else if (route.page === 'usage') main = <UsagePage />;
  else main = <Repositories />;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header>
        <a class="brand" href={href.repositories()}>
          Portfolio
        </a>
        <nav aria-label="Main">
          <a href={href.repositories()} aria-current={route.page === 'repositories' ? 'page' : undefined}>
            Repositories
          </a>
          {session?.admin && (
            <a href={href.usage()} aria-current={route.page === 'usage' ? 'page' : undefined}>
              Usage
            </a>
          )}
        </nav>
        <div class="who">
          {session?.user && <span>Signed in as {session.user}</span>}
          {session?.user && (
            <button type="button" onClick={logout}>
              Log out
            </button>
          )}
          {session && !session.user && session.canLogin && <a href={href.login()}>Log in</a>}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {main}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
