/** The backend contract with blobs up to 64 KiB kept in the database. */
import { contractSuite } from './suite.js';

contractSuite(64 * 1024);
