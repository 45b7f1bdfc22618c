// Apply a spec: paste or upload YAML (or JSON); the controller validates it whole, and every
// problem is shown at the path it names. Applying can move or stop workloads, so it is confirmed.
import { useState } from 'preact/hooks';
import { actions, useAction } from '../actions.js';
import { Confirm } from '../components/confirm.js';
import { Section } from '../components/bits.js';

/** The API's own request limit is larger; a spec past this is surely a wrong file. */
export const specFileBytesMax = 4 * 1024 * 1024;

export function ApplyView() {
  const [text, setText] = useState('');
  const [asking, setAsking] = useState(false);
  const [fileError, setFileError] = useState<string | undefined>();
  const action = useAction();
  const upload = async (e: Event) => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file === undefined) return;
    if (file.size > specFileBytesMax) {
      setFileError(`${file.name} is larger than ${specFileBytesMax / 1024 / 1024} MiB`);
      return;
    }
    setFileError(undefined);
    setText(await file.text());
  };
  const outcome = action.outcome;
  return (
    <div class="apply-view">
      <h1>Apply a spec</h1>
      <Section title="Spec">
        <label for="spec-text">Spec (YAML or JSON)</label>
        <textarea
          id="spec-text"
          rows={18}
          spellcheck={false}
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
        />
        <div class="buttons">
          <label for="spec-file">Or upload a file</label>
          <input
            id="spec-file"
            type="file"
            accept=".yaml,.yml,.json,text/yaml,application/json"
            onChange={(e) => void upload(e)}
          />
          <button
            type="button"
            disabled={action.busy || text.trim() === ''}
            onClick={() => setAsking(true)}
          >
            Apply…
          </button>
        </div>
        {fileError !== undefined && (
          <p class="error" role="alert">
            {fileError}
          </p>
        )}
      </Section>
      {asking && (
        <Confirm
          title="Apply this spec?"
          confirmLabel="Apply"
          onCancel={() => setAsking(false)}
          onConfirm={() => {
            setAsking(false);
            void action.run('Apply', () => actions.apply(text));
          }}
        >
          The controller places, moves or stops workloads to match it. An invalid spec changes
          nothing.
        </Confirm>
      )}
      {outcome !== undefined && (
        <div class={outcome.ok ? 'ok' : 'error'} role="alert" data-testid="apply-outcome">
          <p>{outcome.ok ? 'Applied.' : outcome.message}</p>
          {outcome.problems.length > 0 && (
            <ul class="problems" data-testid="spec-problems">
              {outcome.problems.map((p) => (
                <li key={`${p.path}:${p.message}`}>
                  <code class="path">{p.path}</code>: {p.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
