// Structured JSON logs, one object per line. Fields are merged into the line as given;
// errors are reduced to name/message so a log line never carries a huge stack object.
import type { LogLevel } from "./config.js";

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
  /** Fields added to every line (e.g. component). */
  base?: LogFields;
}

function plain(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = RANK[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => void process.stdout.write(line + "\n"));
  const base = opts.base ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < min) return;
    const line: LogFields = { time: new Date().toISOString(), level, msg, ...base };
    if (fields) for (const k of Object.keys(fields)) line[k] = plain(fields[k]);
    let text: string;
    try {
      text = JSON.stringify(line);
    } catch {
      text = JSON.stringify({ time: line.time, level, msg, ...base, note: "fields not serialisable" });
    }
    write(text);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    enabled: (level) => RANK[level] >= min,
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger({ level: "error", write: () => undefined });
