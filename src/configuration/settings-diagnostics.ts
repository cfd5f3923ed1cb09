/** Settings of runDiagnostics / getDiagnosticsData (CloudStack's DiagnosticsServiceImpl and DiagnosticsFilesList). */
import { fraction, positive, s } from './setting-definition.js';

const ds = 'DiagnosticsServiceImpl';

export const diagnosticsSettings = [
  s(
    'diagnostics.data.retrieval.timeout',
    'Long',
    '1800',
    'global',
    ds,
    'Seconds each command that assembles a router diagnostics archive may run (getDiagnosticsData)',
    { check: positive, acted: true },
  ),
  s(
    'diagnostics.data.max.file.age',
    'Long',
    '86400',
    'global',
    ds,
    'Seconds a getDiagnosticsData archive stays downloadable; after that its URL answers 404 and the file is removed',
    { check: positive, acted: true },
  ),
  s(
    'diagnostics.data.gc.enable',
    'Boolean',
    'true',
    'global',
    ds,
    'Remove diagnostics archives older than diagnostics.data.max.file.age in the background (stacknet removes them whenever an archive is made or downloaded)',
    { isDynamic: false },
  ),
  s(
    'diagnostics.data.gc.interval',
    'Integer',
    '86400',
    'global',
    ds,
    'Seconds between background removals of old diagnostics archives',
    { check: positive, isDynamic: false },
  ),
  s(
    'diagnostics.data.disable.threshold',
    'Float',
    '0.9',
    'global',
    ds,
    'Share of secondary storage in use beyond which no diagnostics archive is stored (stacknet keeps archives in its data directory)',
    { check: fraction },
  ),
] as const;
