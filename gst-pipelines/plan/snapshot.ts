/**
 * The PNG snapshot branch of a pipeline (the demo's pictures, the standby screen's test): one
 * frame a second from a tee, converted to RGB PNG, kept in an appsink the worker pulls.
 */
import { chain } from './launch.js';

export function snapshotBranch(tee: string, name: string): string {
  return chain(
    `${tee}.`,
    'queue leaky=downstream max-size-buffers=2',
    'videorate drop-only=true max-rate=1',
    'videoconvert',
    'video/x-raw,format=RGB',
    'pngenc compression-level=1',
    `appsink name=${name} sync=false async=false max-buffers=1 drop=true`,
  );
}
