/** The dashboard's built browser files, shared by the build (at synth) and the page (at run time). */
export const DASHBOARD_FILES = { script: 'dashboard.js', css: 'dashboard.css' } as const;

export interface DashboardAssets {
  script: string;
  css: string;
}
