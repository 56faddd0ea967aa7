/**
 * Structured logging. One root logger per process; `child()` adds fields (room id, event id,
 * network...) so every line about one event can be found together. Two output formats:
 * `pretty` (one human line, fields as key=value) and `json` (one JSON object per line).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LogSink {
  write(line: string): void;
}

interface LoggerOptions {
  level: LogLevel;
  format: 'pretty' | 'json';
  sink?: LogSink;
}

function serialise(value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  return value;
}

function prettyValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /[\s="]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

class StructuredLogger implements Logger {
  constructor(
    private readonly opts: Required<LoggerOptions>,
    private readonly fields: LogFields,
  ) {}

  private emit(level: LogLevel, msg: string, extra?: LogFields): void {
    if (LEVELS[level] < LEVELS[this.opts.level]) return;
    const all = extra ? { ...this.fields, ...extra } : this.fields;
    const time = new Date().toISOString();
    if (this.opts.format === 'json') {
      const out: LogFields = { time, level, msg };
      for (const [k, v] of Object.entries(all)) out[k] = serialise(v);
      this.opts.sink.write(JSON.stringify(out) + '\n');
      return;
    }
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
    for (const [k, v] of Object.entries(all)) {
      if (v !== undefined) line += ` ${k}=${prettyValue(v)}`;
    }
    const err = Object.values(all).find((v): v is Error => v instanceof Error);
    if (err?.stack && LEVELS[this.opts.level] <= LEVELS.debug) line += `\n${err.stack}`;
    this.opts.sink.write(line + '\n');
  }

  debug(msg: string, fields?: LogFields): void { this.emit('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.emit('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.emit('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.emit('error', msg, fields); }
  child(fields: LogFields): Logger {
    return new StructuredLogger(this.opts, { ...this.fields, ...fields });
  }
}

export function createLogger(opts: LoggerOptions, fields: LogFields = {}): Logger {
  const sink = opts.sink ?? { write: (line: string) => process.stderr.write(line) };
  return new StructuredLogger({ ...opts, sink }, fields);
}

/** A logger that drops everything: for unit tests of code that insists on a logger. */
export const silentLogger: Logger = createLogger({ level: 'error', format: 'json', sink: { write: () => {} } });
