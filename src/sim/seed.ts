// Demo data for the sim's apps: each app's database (owned by its app user) with rows, and files in
// its volumes shaped like the real app's (gitea repositories, immich photo library, ghost content).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DemoApp } from './apps.js';
import { writeRandomFile } from './random.js';
import type { MariadbServer, PostgresServer, RedisServer } from './databases.js';
import type { SimRuntime } from './runtime.js';

export interface SimSizes {
  /** Rows per main table of each app database. */
  dbRows: number;
  /** Files in immich's photo library (the large PVC). */
  photoFiles: number;
  /** Total bytes of immich's photo library. */
  photoBytes: number;
  /** Bytes of immich's model cache. */
  cacheBytes: number;
  /** Size of the other volumes' bigger files (git packs, ghost images). */
  fileBytes: number;
}

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

interface Dbs { postgres?: PostgresServer; mysql?: MariadbServer; redis?: RedisServer }

export async function seedDatabases(apps: DemoApp[], dbs: Dbs, secrets: Record<string, Record<string, string>>, sizes: SimSizes): Promise<void> {
  const n = Math.max(1, sizes.dbRows);
  const names = new Set(apps.map((a) => a.name));
  const pg = dbs.postgres;
  if (pg && names.has('gitea')) {
    await pg.query(`CREATE ROLE gitea LOGIN PASSWORD ${q(secrets.gitea?.dbPassword ?? '')}; CREATE DATABASE gitea OWNER gitea ENCODING 'UTF8';`);
    await pg.query(`
      CREATE TABLE "user" (id bigserial PRIMARY KEY, lower_name text UNIQUE NOT NULL, name text NOT NULL, email text, created_unix bigint);
      CREATE TABLE repository (id bigserial PRIMARY KEY, owner_id bigint REFERENCES "user"(id), lower_name text, name text, description text, size bigint, is_private boolean DEFAULT false);
      CREATE TABLE issue (id bigserial PRIMARY KEY, repo_id bigint REFERENCES repository(id), "index" bigint, title text, content text, is_closed boolean, created_unix bigint);
      INSERT INTO "user" (lower_name, name, email, created_unix) SELECT 'user' || i, 'User' || i, 'user' || i || '@example.wild', 1700000000 + i FROM generate_series(1, ${Math.max(3, Math.ceil(n / 20))}) i;
      INSERT INTO repository (owner_id, lower_name, name, description, size) SELECT 1 + (i % 3), 'repo-' || i, 'Repo-' || i, 'Repository number ' || i, i * 1024 FROM generate_series(1, ${Math.max(3, Math.ceil(n / 10))}) i;
      INSERT INTO issue (repo_id, "index", title, content, is_closed, created_unix) SELECT 1 + (i % 3), i, 'Issue ' || i, repeat('Something is broken. ', 10), i % 4 = 0, 1700000000 + i * 60 FROM generate_series(1, ${n}) i;`, 'gitea', 'gitea');
  }
  if (pg && names.has('immich')) {
    await pg.query(`CREATE ROLE immich LOGIN PASSWORD ${q(secrets.immich?.dbPassword ?? '')}; CREATE DATABASE immich OWNER immich ENCODING 'UTF8';`);
    await pg.query(`
      CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text UNIQUE, name text, "createdAt" timestamptz DEFAULT now());
      CREATE TABLE assets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "ownerId" uuid REFERENCES users(id), "originalPath" text, checksum bytea, "fileCreatedAt" timestamptz, "isFavorite" boolean DEFAULT false);
      CREATE TABLE albums (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "ownerId" uuid REFERENCES users(id), "albumName" text);
      INSERT INTO users (email, name) VALUES ('admin@example.wild', 'Admin'), ('family@example.wild', 'Family');
      INSERT INTO assets ("ownerId", "originalPath", checksum, "fileCreatedAt") SELECT (SELECT id FROM users ORDER BY email LIMIT 1), 'upload/library/admin/2024/IMG_' || lpad(i::text, 4, '0') || '.jpg', sha256(i::text::bytea), now() - i * interval '1 hour' FROM generate_series(1, ${n}) i;
      INSERT INTO albums ("ownerId", "albumName") SELECT (SELECT id FROM users ORDER BY email LIMIT 1), 'Album ' || i FROM generate_series(1, 5) i;`, 'immich', 'immich');
  }
  const my = dbs.mysql;
  if (my && names.has('ghost')) {
    await my.query(`CREATE DATABASE ghost CHARACTER SET utf8mb4; CREATE USER 'ghost'@'%' IDENTIFIED BY ${q(secrets.ghost?.dbPassword ?? '').replace(/\\/g, '\\\\')}; GRANT ALL PRIVILEGES ON ghost.* TO 'ghost'@'%'; FLUSH PRIVILEGES;`);
    await my.query(`
      CREATE TABLE users (id varchar(24) PRIMARY KEY, name varchar(191) NOT NULL, slug varchar(191) UNIQUE, email varchar(191) UNIQUE, created_at datetime NOT NULL);
      CREATE TABLE posts (id varchar(24) PRIMARY KEY, title varchar(2000) NOT NULL, slug varchar(191) UNIQUE, html longtext, status varchar(50), author_id varchar(24), published_at datetime, INDEX (published_at));
      CREATE TABLE tags (id varchar(24) PRIMARY KEY, name varchar(191), slug varchar(191) UNIQUE);
      INSERT INTO users VALUES ('1', 'Ghost Admin', 'admin', 'admin@example.wild', NOW());
      INSERT INTO posts SELECT LPAD(HEX(seq), 24, '0'), CONCAT('Post number ', seq), CONCAT('post-', seq), REPEAT('<p>Lorem ipsum dolor sit amet.</p>', 8), IF(seq % 5 = 0, 'draft', 'published'), '1', NOW() - INTERVAL seq HOUR FROM seq_1_to_${n};
      INSERT INTO tags SELECT LPAD(HEX(seq), 24, '0'), CONCAT('Tag ', seq), CONCAT('tag-', seq) FROM seq_1_to_10;`, 'ghost');
  }
  const redis = dbs.redis;
  if (redis && names.has('immich')) {
    for (let i = 1; i <= Math.min(n, 50); i++) await redis.cli('HSET', `immich_bull:thumbnailGeneration:${i}`, 'name', 'generate-thumbnail', 'data', `{"id":"${i}"}`);
    await redis.cli('SET', 'immich:server:version', '"1.119.0"');
    await redis.cli('SAVE');
  }
}


function writeText(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}

export async function seedVolumes(apps: DemoApp[], rt: SimRuntime, sizes: SimSizes, domain: string): Promise<void> {
  const buf = Buffer.allocUnsafe(1 << 20);
  const names = new Set(apps.map((a) => a.name));
  if (names.has('gitea')) {
    const dir = rt.pvcDir('gitea', 'gitea-data');
    for (const repo of ['homelab', 'dotfiles', 'wild-cloud-notes']) {
      const r = path.join(dir, 'git', 'repositories', 'admin', `${repo}.git`);
      writeText(path.join(r, 'HEAD'), 'ref: refs/heads/main\n');
      writeText(path.join(r, 'config'), '[core]\n\trepositoryformatversion = 0\n\tbare = true\n');
      writeText(path.join(r, 'description'), `${repo}\n`);
      writeText(path.join(r, 'refs', 'heads', 'main'), `${'0123456789abcdef'.repeat(2)}01234567\n`);
      writeRandomFile(path.join(r, 'objects', 'pack', `pack-${repo}.pack`), sizes.fileBytes, buf);
    }
    writeText(path.join(dir, 'gitea', 'conf', 'app.ini'), `APP_NAME = Gitea\n[server]\nDOMAIN = gitea.${domain}\n`);
    writeRandomFile(path.join(dir, 'gitea', 'avatars', 'admin.png'), 4096, buf);
    mkdirSync(path.join(dir, 'ssh'), { recursive: true });
  }
  if (names.has('immich')) {
    const dir = rt.pvcDir('immich', 'immich-pvc');
    const files = Math.max(1, sizes.photoFiles);
    const per = Math.floor(sizes.photoBytes / files);
    for (let i = 0; i < files; i++) {
      const year = 2020 + (i % 5);
      const bytes = i === files - 1 ? sizes.photoBytes - per * (files - 1) : per;
      writeRandomFile(path.join(dir, 'library', 'admin', String(year), `${year}-0${1 + (i % 9)}-1${i % 10}`, `IMG_${String(i).padStart(5, '0')}.jpg`), bytes, buf);
    }
    for (const sub of ['library', 'thumbs', 'encoded-video', 'upload', 'profile', 'backups']) writeText(path.join(dir, sub, '.immich'), '');
    writeRandomFile(path.join(dir, 'thumbs', 'admin', 'IMG_00000-thumbnail.webp'), 2048, buf);
    const cache = rt.pvcDir('immich', 'immich-cache-pvc');
    writeRandomFile(path.join(cache, 'clip', 'ViT-B-32__openai', 'textual', 'model.onnx'), sizes.cacheBytes, buf);
    writeText(path.join(cache, 'clip', 'ViT-B-32__openai', 'config.json'), '{"embed_dim": 512}\n');
  }
  if (names.has('ghost')) {
    const dir = rt.pvcDir('ghost', 'ghost-content');
    for (let i = 1; i <= 5; i++) writeRandomFile(path.join(dir, 'images', '2025', '01', `photo-${i}.jpg`), Math.max(1024, Math.floor(sizes.fileBytes / 2)), buf);
    writeText(path.join(dir, 'themes', 'casper', 'package.json'), '{"name":"casper","version":"5.7.0"}\n');
    writeText(path.join(dir, 'themes', 'casper', 'index.hbs'), '{{!< default}}\n<main>{{#foreach posts}}{{title}}{{/foreach}}</main>\n');
    writeText(path.join(dir, 'settings', 'routes.yaml'), 'routes:\ncollections:\n  /:\n    permalink: /{slug}/\n    template: index\n');
    mkdirSync(path.join(dir, 'data'), { recursive: true });
    mkdirSync(path.join(dir, 'logs'), { recursive: true });
  }
  if (names.has('website')) {
    const dir = rt.pvcDir('website', 'website-content');
    writeText(path.join(dir, 'index.html'), `<!doctype html><title>Welcome to ${domain}</title><h1>It works</h1>\n`);
    writeText(path.join(dir, 'about', 'index.html'), '<!doctype html><title>About</title><p>A Wild Cloud site.</p>\n');
    writeText(path.join(dir, 'assets', 'style.css'), 'body { font-family: sans-serif; }\n');
    writeRandomFile(path.join(dir, 'assets', 'logo.png'), 8192, buf);
  }
}
