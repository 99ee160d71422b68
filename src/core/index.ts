export * from './digest.js';
export * from './errors.js';
export * from './interfaces.js';
export * from './maintenance.js';
export * from './manifest.js';
export * from './names.js';
export * from './observer.js';
export * from './cache.js';
