// A throwaway CA and server certificate for the sim's API server (kubectl sends a bearer token only
// over TLS), made with the system's openssl.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface SimTls { caPem: string; certPem: string; keyPem: string }

export function makeSimTls(dir: string): SimTls {
  mkdirSync(dir, { recursive: true });
  const f = (n: string): string => path.join(dir, n);
  const run = (args: string[]): void => { execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] }); };
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
    '-subj', '/CN=wild-sim-ca', '-keyout', f('ca.key'), '-out', f('ca.crt'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=kube-apiserver',
    '-keyout', f('server.key'), '-out', f('server.csr')]);
  const ext = f('server.ext');
  execFileSync('sh', ['-c', 'printf "%s\\n" "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc" "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" > "$1"', 'sh', ext]);
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '3650', '-out', f('server.crt'), '-extfile', ext]);
  return { caPem: readFileSync(f('ca.crt'), 'utf8'), certPem: readFileSync(f('server.crt'), 'utf8'), keyPem: readFileSync(f('server.key'), 'utf8') };
}
