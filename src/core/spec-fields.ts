// The building blocks of spec schemas: names, bounded text and numbers, durations, commands and
// labels, each with a message that says what it expects. Shared by the spec's sections (spec.ts,
// probe-spec.ts, alerting-spec.ts) so that every field reads and fails the same way.
import { z } from 'zod';

export const nameRegex = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const nameExpected =
  'expected a name of lowercase letters, digits and "-" (1-63 characters)';
export const nameSchema = z
  .string({ error: nameExpected })
  .regex(nameRegex, { error: nameExpected });

// Every schema below carries its own message: zod's defaults ("Invalid input", "Too small") say
// neither what the field is nor what would be accepted, and the spec's reader is a person.
export const text = (what: string, max: number) => {
  const expected = `expected ${what} of at most ${max} characters`;
  return z.string({ error: expected }).max(max, { error: expected });
};
/** A whole number within bounds; `unit` (" ms") follows the bounds in the message. */
export const wholeNumber = (what: string, min: number, max: number, unit = '') => {
  const expected = `expected ${what} between ${min} and ${max}${unit}`;
  return z
    .number({ error: expected })
    .int({ error: expected })
    .min(min, { error: expected })
    .max(max, { error: expected });
};
export const listOf = <T extends z.ZodType>(item: T, what: string) =>
  z.array(item, { error: `expected a list of ${what}` });
export const commandSchema = listOf(
  z
    .string({ error: 'expected each word of the command as a string' })
    .min(1, { error: 'expected a non-empty word' }),
  'words (the command and its arguments)',
).min(1, { error: 'expected a command of at least one word' });

export const labelsSchema = z.record(
  z.string({ error: 'expected a label key' }).regex(/^[a-zA-Z0-9._/-]{1,63}$/, {
    error: 'expected a label key of letters, digits, ".", "_", "/", "-"',
  }),
  text('a label value', 63),
  { error: 'expected labels as a map of key: value' },
);

export const positive = (what: string) =>
  z.number({ error: `expected ${what}` }).positive({ error: `expected ${what}` });
export const positiveInt = (what: string) =>
  z
    .number({ error: `expected ${what}` })
    .int({ error: `expected ${what}` })
    .positive({ error: `expected ${what}` });
export const durationMs = (what: string, max: number) =>
  positiveInt(`${what} as a positive whole number of milliseconds`).max(max, {
    error: `expected ${what} of at most ${max} ms`,
  });
