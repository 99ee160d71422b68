/** What a caller may do on a repository: pull reads, push writes, delete deletes. */
export type Action = 'pull' | 'push' | 'delete';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];
