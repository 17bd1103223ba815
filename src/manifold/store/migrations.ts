/** Schema migrations, applied in order inside one transaction each; `migrations` records the applied versions. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'apps, releases, formation, dynos',
    sql: `
      CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}'
      );
      CREATE TABLE releases (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        slug TEXT,
        procfile TEXT NOT NULL,
        config TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, version)
      );
      CREATE TABLE formation (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity >= 0),
        size TEXT NOT NULL,
        PRIMARY KEY (app, type)
      );
      CREATE TABLE dynos (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        release INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'release build metadata (slug size, build time, buildpacks)',
    sql: `ALTER TABLE releases ADD COLUMN build TEXT;`,
  },
  {
    version: 3,
    // \`by\` is an SQL keyword; releases made before this read with no author (NULL)
    name: 'release author (made_by)',
    sql: `ALTER TABLE releases ADD COLUMN made_by TEXT;`,
  },
];
