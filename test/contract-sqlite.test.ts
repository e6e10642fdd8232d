// The contract suite on the SQLite backend (the default).
import t from 'tap';
import { contractSuite } from './contract.js';
import { startServer } from './helper.js';

contractSuite(t, async (t, options = {}) => {
  const { url } = await startServer(t, { config: { sweepMs: 50, ...options } });
  return { url };
});
