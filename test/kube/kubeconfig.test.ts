// Our kubeconfig reader: what it takes (token, token file, CA data, client certs, contexts) and
// what it refuses loudly rather than ignoring (exec and auth-provider users, proxies).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kubeconfig, KubeconfigError } from '../../src/kube/index.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'wild-kc-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const doc = (user: string, cluster = 'server: https://10.0.0.1:6443\n    certificate-authority-data: ' + Buffer.from('CA PEM').toString('base64')) => `apiVersion: v1
kind: Config
current-context: main
contexts:
- name: main
  context: { cluster: c1, user: u1, namespace: apps }
- name: other
  context: { cluster: c2, user: u1 }
clusters:
- name: c1
  cluster:
    ${cluster}
- name: c2
  cluster:
    server: https://10.0.0.2:6443
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    ${user}
`;

describe('Kubeconfig', () => {
  it('reads the current context: server, namespace, CA data and a bearer token', () => {
    const kc = Kubeconfig.parse(doc('token: abc-token-123'), 'kc');
    expect(kc.context).toBe('main');
    expect(kc.server).toBe('https://10.0.0.1:6443');
    expect(kc.namespace).toBe('apps');
    expect(kc.authorization()).toBe('Bearer abc-token-123');
    expect(kc.tlsOptions().ca?.toString()).toBe('CA PEM');
  });

  it('takes another context by name and refuses an unknown one', () => {
    expect(Kubeconfig.parse(doc('token: t'), 'kc', 'other').server).toBe('https://10.0.0.2:6443');
    expect(() => Kubeconfig.parse(doc('token: t'), 'kc', 'nope')).toThrow(KubeconfigError);
  });

  it('refuses exec and auth-provider users and proxies instead of ignoring them', () => {
    expect(() => Kubeconfig.parse(doc('exec: { command: aws, args: [eks, get-token] }'), 'kc')).toThrow(/exec/);
    expect(() => Kubeconfig.parse(doc('auth-provider: { name: oidc }'), 'kc')).toThrow(/auth-provider/);
    expect(() => Kubeconfig.parse(doc('token: t', 'server: https://10.0.0.1:6443\n    proxy-url: http://proxy:3128'), 'kc')).toThrow(/proxy/);
  });

  it('loads from a file, with a token file and client certificate files', async () => {
    await writeFile(path.join(dir, 'token'), 'file-token\n');
    await writeFile(path.join(dir, 'cert.pem'), 'CERT');
    await writeFile(path.join(dir, 'key.pem'), 'KEY');
    const file = path.join(dir, 'kubeconfig');
    await writeFile(file, doc(`tokenFile: ${path.join(dir, 'token')}\n    client-certificate: ${path.join(dir, 'cert.pem')}\n    client-key: ${path.join(dir, 'key.pem')}`));
    const kc = Kubeconfig.load(file);
    expect(kc.server).toBe('https://10.0.0.1:6443');
    expect(kc.authorization()).toBe('Bearer file-token');
    const tls = kc.tlsOptions();
    expect([tls.cert?.toString(), tls.key?.toString()]).toEqual(['CERT', 'KEY']);
    // The token file is read again on each request: a rotated token is picked up.
    await writeFile(path.join(dir, 'token'), 'rotated-token\n');
    expect(kc.authorization()).toBe('Bearer rotated-token');
  });

  it('names the file when the YAML is broken', () => {
    expect(() => Kubeconfig.parse('clusters: [', '/etc/kc')).toThrow(/\/etc\/kc/);
  });
});
