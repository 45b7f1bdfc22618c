// A Logger that writes one line per record to stderr: JSON for machines, or plain text.
import type { LogLevel, Logger } from '../core/ports.js';

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function streamLogger(options: {
  name: string;
  level?: LogLevel;
  json?: boolean;
  fields?: Record<string, unknown>;
}): Logger {
  const min =
    order[options.level ?? (process.env.CONTINUUM_LOG_LEVEL as LogLevel | undefined) ?? 'info'] ??
    order.info;
  const base = options.fields ?? {};
  return {
    log(level, message, fields) {
      if (order[level] < min) return;
      const record = {
        time: new Date().toISOString(),
        level,
        component: options.name,
        message,
        ...base,
        ...fields,
      };
      const line = options.json
        ? JSON.stringify(record)
        : `${record.time} ${level.toUpperCase().padEnd(5)} ${options.name}: ${message}${Object.keys({ ...base, ...fields }).length ? ` ${JSON.stringify({ ...base, ...fields })}` : ''}`;
      process.stderr.write(`${line}\n`);
    },
    child(fields) {
      return streamLogger({ ...options, fields: { ...base, ...fields } });
    },
  };
}
