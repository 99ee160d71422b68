/** The backend contract with every blob in the object store. */
import { contractSuite } from './suite.js';

contractSuite(0);
