// The credentials in force: ROLLCALL_TOKEN and/or the auth file, swapped whole on reload (SIGHUP) so requests
// in flight and open watches keep going. A file that fails to load on reload leaves the previous one in force.
import { loadAuthFile } from './auth-file.js';
import { adminTokenEntry, createCredentials, type Credentials, type TokenEntry } from './credentials.js';

export interface AuthSource {
  credentials(): Credentials;
  /** Reads the auth file again; throws (keeping the credentials in force) when it is bad. */
  reload(): Credentials;
}

/** Null when neither a token nor an auth file is configured: auth is off. Throws on a bad auth file. */
export function createAuthSource(options: { adminToken?: string | undefined; authFile?: string | undefined }): AuthSource | null {
  const { adminToken, authFile } = options;
  if (adminToken === undefined && authFile === undefined) return null;
  const load = () => {
    const entries: TokenEntry[] = authFile === undefined ? [] : loadAuthFile(authFile);
    if (adminToken !== undefined) entries.push(adminTokenEntry(adminToken));
    return createCredentials(entries);
  };
  let current = load();
  return {
    credentials: () => current,
    reload() {
      current = load();
      return current;
    },
  };
}
