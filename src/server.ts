// The process: configuration, logger, listen, graceful close on SIGTERM/SIGINT, reload on SIGHUP.
import { buildApp } from './app.js';
import { logRedaction } from './auth/redact.js';
import type { Config } from './config.js';

/** The process's logger: credentials are censored from every line, whatever a line includes. */
export function serverLoggerOptions(config: Pick<Config, 'logLevel'>) {
  return { level: config.logLevel, redact: logRedaction };
}

export async function runServer(config: Config): Promise<void> {
  const app = await buildApp({
    config,
    processMetrics: true,
    logger: serverLoggerOptions(config),
  });

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    // A stuck close must not keep the process alive forever.
    const force = setTimeout(() => {
      app.log.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    try {
      await app.close();
      process.exit(0);
    } catch (err) {
      app.log.error({ err }, 'error while shutting down');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void close('SIGTERM'));
  process.once('SIGINT', () => void close('SIGINT'));
  // SIGHUP reloads credentials without dropping a connection; a bad file is logged and the old one kept.
  process.on('SIGHUP', () => {
    try {
      const principals = app.reloadAuth();
      if (principals !== null) app.log.info({ principals }, 'auth reloaded: %d principals', principals);
    } catch (err) {
      app.log.error('auth not reloaded, the previous credentials stay in force: %s', (err as Error).message);
    }
    try {
      if (app.reloadTls()) app.log.info('TLS certificates reloaded');
    } catch (err) {
      app.log.error('TLS certificates not reloaded, the previous ones stay in force: %s', (err as Error).message);
    }
  });

  await app.listen({ host: config.host, port: config.port });
}
