// Sign-in with the API token. The token is checked against the controller before anything else is
// shown; a refused token leaves only this form and a message saying why.
import { useState } from 'preact/hooks';
import { ApiError, request } from './api.js';

export function SignIn(props: { onSignedIn: (token: string) => void; notice?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(props.notice);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await request('GET', '/v1/cluster', { token: token.trim() });
      props.onSignedIn(token.trim());
    } catch (err) {
      if (err instanceof ApiError && err.code === 'CONTINUUM_ERR_UNAUTHORIZED')
        setError('The controller refused this token. Check the API token and try again.');
      else setError(`Could not sign in: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>Continuum console</h1>
      <form onSubmit={(e) => void submit(e)} aria-label="Sign in">
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          autoFocus
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <p class="hint">
          The controller's API token (<code>api.token</code> in its data directory). It is kept for
          this browser tab only.
        </p>
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error !== undefined && (
          <p class="error" role="alert" data-testid="sign-in-error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
