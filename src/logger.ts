import { pino, type Logger } from 'pino';

/** Paths pino blanks in every log line: keys, tokens, flags, env values, credentials. */
export const REDACT_PATHS = [
  'req.headers["x-api-key"]', 'req.headers.authorization', 'req.headers.cookie',
  'headers["x-api-key"]', 'headers.authorization', 'apiKey', 'flagSecret', 'flag', 'env', 'password', 'token', 'redisUrl',
  'gitToken', 'gitSshKey', 'gitUrl', 'webhookSecret', 'req.headers["x-gitlab-token"]', 'req.headers["x-hub-signature-256"]', 'req.headers["x-gitea-signature"]',
];

/** The one process logger; components take child loggers from it. */
export function createLogger(level: string): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}
