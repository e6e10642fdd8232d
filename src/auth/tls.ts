// Server TLS from --tls-cert / --tls-key / --tls-client-ca: HTTPS and WSS on the one port, mutual TLS when a
// client CA is given, and certificates swapped on reload (SIGHUP) without dropping a connection.
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { RollcallError } from '../errors.js';

export interface TlsFiles {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsClientCa?: string | undefined;
}

export interface ServerTls extends SecureContextOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** Ask for a client certificate and refuse the handshake without one the CA signed (mutual TLS). */
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

function read(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new RollcallError('bad_request', `${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * The HTTPS options the files name, checked by building a secure context (a key that does not match its
 * certificate, or a file that is not PEM, is a one-line error here and not a failed handshake later).
 * Null without --tls-cert.
 */
export function loadServerTls(files: TlsFiles): ServerTls | null {
  if (files.tlsCert === undefined || files.tlsKey === undefined) return null;
  const options: ServerTls = {
    cert: read('--tls-cert', files.tlsCert),
    key: read('--tls-key', files.tlsKey),
    requestCert: files.tlsClientCa !== undefined,
    rejectUnauthorized: files.tlsClientCa !== undefined,
  };
  if (files.tlsClientCa !== undefined) options.ca = read('--tls-client-ca', files.tlsClientCa);
  try {
    createSecureContext(options);
  } catch (err) {
    throw new RollcallError('bad_request', `TLS: ${files.tlsCert} / ${files.tlsKey}${files.tlsClientCa ? ` / ${files.tlsClientCa}` : ''}: ${(err as Error).message}`);
  }
  return options;
}

/** Reads the files again and swaps them in for new connections; throws (keeping the old ones) when they are bad. */
export function reloadServerTls(server: TlsServer, files: TlsFiles): void {
  const options = loadServerTls(files);
  if (options !== null) server.setSecureContext(options);
}
