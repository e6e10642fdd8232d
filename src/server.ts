// The process: configuration, logger, listen, graceful close on SIGTERM/SIGINT, reload on SIGHUP.
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { buildApp, type App } from './app.js';
import { logRedaction } from './auth/redact.js';
import type { Config } from './config.js';
import { VERSION } from './version.js';

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
  const start = startLine(app, config);
  // Machines read the JSON log on stdout; a person starting the server reads this one line on stderr.
  app.log.info({ version: VERSION, url: start.url, docs: start.docs, dashboard: start.dashboard, dataDir: start.dataDir }, 'rollcall ready');
  process.stderr.write(`${start.text}\n`);
}

/** Where it listens, where a browser should go, where the data is, which version: what a person needs first. */
export function startLine(app: App, config: Config): { text: string; url: string; docs: string; dashboard?: string; dataDir: string } {
  const address = app.server.address() as AddressInfo;
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  const host = (a: string) => (a.includes(':') ? `[${a}]` : a);
  const scheme = config.tlsCert === undefined ? 'http' : 'https';
  const url = `${scheme}://${host(address.address)}:${address.port}`;
  // A wildcard address is not somewhere a browser can go; loopback on the same family is.
  const local = wildcard ? `${scheme}://${address.address === '::' ? '[::1]' : '127.0.0.1'}:${address.port}` : url;
  const docs = `${local}/docs`;
  // The dashboard is only named when this build serves one.
  const dashboard = app.hasRoute({ method: 'GET', url: '/ui' }) || app.hasRoute({ method: 'GET', url: '/ui/' }) ? `${local}/ui` : undefined;
  // On etcd the data is the cluster's, under the prefix: say where, not a data dir that is never used.
  const dataDir =
    config.store === 'etcd'
      ? `etcd ${config.etcdEndpoints.join(',')} under ${config.etcdPrefix}`
      : config.dataDir === ':memory:'
        ? ':memory:'
        : resolve(config.dataDir);
  const text =
    `rollcall ${VERSION} listening on ${url}${wildcard ? ' (every address)' : ''}; ` +
    `API ${local}/v1, docs ${docs}${dashboard ? `, dashboard ${dashboard}` : ''}; data in ${dataDir}` +
    (config.token ? '; a token is required' : '; no token: anyone who reaches it can write');
  return { text, url, docs, ...(dashboard ? { dashboard } : {}), dataDir };
}
