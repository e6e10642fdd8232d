// The etcd3 client for --store etcd: endpoints, TLS, user/password, and a deadline on every unary call so a
// replica that lost etcd answers within --etcd-timeout instead of hanging.
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { Config } from '../../config.js';

export type EtcdClientConfig = Pick<Config, 'etcdEndpoints' | 'etcdCa' | 'etcdCert' | 'etcdKey' | 'etcdUsername' | 'etcdPassword' | 'etcdTimeout'>;

export function createEtcdClient(config: EtcdClientConfig): Etcd3 {
  const options: IOptions = {
    hosts: config.etcdEndpoints,
    dialTimeout: config.etcdTimeout,
    // Streams (watch, keep-alive) live as long as the replica; every other call gets the deadline.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + config.etcdTimeout }),
  };
  if (config.etcdCa !== undefined) {
    options.credentials = {
      rootCertificate: readFileSync(config.etcdCa),
      ...(config.etcdCert === undefined ? {} : { certChain: readFileSync(config.etcdCert), privateKey: readFileSync(config.etcdKey!) }),
    };
  }
  if (config.etcdUsername !== undefined) options.auth = { username: config.etcdUsername, password: config.etcdPassword! };
  return new Etcd3(options);
}
