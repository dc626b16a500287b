// The repository settings of one instance, as read from config.yaml (cloud.backup) and
// secrets.yaml (cloud.backup.password, cloud.backup.credentials). Shared by the storage
// plugins (which turn them into a restic environment) and src/wild (which reads and writes them).

export interface S3Credentials { accessKeyId: string; secretAccessKey: string }
export interface SftpCredentials { password?: string; privateKey?: string }
export interface AzureCredentials { accountName: string; accountKey: string }
export interface GcsCredentials { projectId?: string; serviceAccountKey: string }
export interface B2Credentials { accountId: string; accountKey: string }
export interface RestCredentials { username: string; password: string }

/** Credentials by backend, as kept under cloud.backup.credentials in secrets.yaml. */
export interface StorageCredentials {
  s3?: S3Credentials;
  sftp?: SftpCredentials;
  azure?: AzureCredentials;
  gcs?: GcsCredentials;
  b2?: B2Credentials;
  rest?: RestCredentials;
}

export interface RepositorySettings {
  /** restic repository URI: "/path", "s3:...", "b2:...", "sftp:...", "rest:...", "rclone:...", "azure:...", "gs:..." */
  repository: string;
  /** restic repository password (secret). */
  password: string;
  /** cloud.backup.backend.* */
  endpoint?: string;
  region?: string;
  port?: number;
  /**
   * Path of a PEM file with extra CA certificates to trust for the backend's TLS (restic
   * `--cacert`): a self-hosted MinIO or rest-server with its own certificate authority.
   */
  cacert?: string;
  credentials: StorageCredentials;
}
