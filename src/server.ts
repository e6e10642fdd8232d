// The process: configuration, logger, listen, graceful close on SIGTERM/SIGINT.
import { buildApp } from './app.js';
import type { Config } from './config.js';

export async function runServer(config: Config): Promise<void> {
  const app = await buildApp({
    config,
    processMetrics: true,
    logger: { level: config.logLevel },
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

  await app.listen({ host: config.host, port: config.port });
}
