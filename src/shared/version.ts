/** The version of this install, from package.json (the one place it is written). */
import fs from 'node:fs';
import path from 'node:path';

// dist/src/shared/version.js → the package root, three levels up
const PACKAGE_JSON = path.join(__dirname, '../../../package.json');

export const VERSION: string = (JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
