// Certificates for the TLS tests, made with openssl: a CA, a server certificate for 127.0.0.1 (SAN), client
// certificates, and a second, unrelated CA. EC keys: generation is fast even on a loaded machine.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';

export function haveOpenssl(t: Test): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    // Never skipped in CI: there the missing tool is a failure (.ci/run installs openssl).
    if (process.env.CI === 'true') throw new Error('openssl is required for the TLS tests (CI=true)');
    t.comment('SKIPPING TLS TESTS LOUDLY: openssl is not installed');
    return false;
  }
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeCa(dir: string, name: string): { cert: string; key: string } {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2']);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A certificate signed by `ca`: a server one (SAN IP:127.0.0.1) or a client one (CN only). */
export function makeCert(dir: string, ca: { cert: string; key: string }, name: string, cn: string, server: boolean): { cert: string; key: string } {
  openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, server ? 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext]);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}
