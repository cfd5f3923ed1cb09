/**
 * What CloudStack's web UI (and other consoles) ask before and right after login, answered for what stacknet
 * is: no LDAP, SAML, OAuth, 2FA, themes, icons or Cloudian, so those lists are empty and say so by being empty;
 * the capabilities are stacknet's own settings. Any error from listCapabilities or listLdapConfigurations stops
 * the UI's start, and a 401 before login shows an error toast, so each of these must answer.
 */
import { allRoles, defineCommand, listResult, objectResult, refParams } from '../api/command.js';
import type { AnyCommand } from '../api/command.js';
import { CloudStackError } from '../errors/catalogue.js';
import { pageOf } from '../api/list.js';
import { getSetting } from '../configuration/repository.js';

/** The CloudStack API version stacknet answers as: its commands and shapes are 4.18's. */
export const CLOUDSTACK_API_VERSION = '4.18.0.0';

const listCapabilitiesCmd = defineCommand({
  name: 'listCapabilities',
  roles: allRoles,
  params: {},
  async handler(_p, ctx) {
    const db = ctx.store.db;
    const [interval, max] = await Promise.all([
      getSetting(db, 'api.throttling.interval'),
      getSetting(db, 'api.throttling.max'),
    ]);
    return objectResult('capability', {
      cloudstackversion: CLOUDSTACK_API_VERSION,
      securitygroupsenabled: false,
      dynamicrolesenabled: false,
      userpublictemplateenabled: false,
      supportELB: 'false',
      projectinviterequired: false,
      allowusercreateprojects: false,
      allowuserviewdestroyedvm: false,
      allowuserexpungerecovervm: false,
      allowuserexpungerecovervolume: false,
      allowuserviewalldomainaccounts: false,
      regionsecondaryenabled: false,
      kvmsnapshotenabled: false,
      kubernetesserviceenabled: false,
      kubernetesclusterexperimentalfeaturesenabled: false,
      customdiskofferingminsize: 1,
      customdiskofferingmaxsize: 1024,
      apilimitinterval: interval,
      apilimitmax: max,
      defaultuipagesize: 20,
      instancesstatsretentiontime: 0,
      instancesstatsuseronly: false,
      instancesdisksstatsretentionenabled: false,
      instancesdisksstatsretentiontime: 0,
    });
  },
});

const listLdapConfigurationsCmd = defineCommand({
  name: 'listLdapConfigurations',
  roles: allRoles,
  // CloudStack's LdapListConfigurationCmd names its envelope so; the UI reads exactly this key.
  responseName: 'ldapconfigurationresponse',
  params: refParams('listLdapConfigurations', [
    'hostname',
    'port',
    'domainid',
    'listall',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    await pageOf(ctx.store.db, p);
    return listResult('LdapConfiguration', [], 0);
  },
});

const cloudianIsEnabledCmd = defineCommand({
  name: 'cloudianIsEnabled',
  roles: allRoles,
  params: {},
  async handler() {
    return objectResult('cloudianisenabled', { enabled: false });
  },
});

const listResourceIconCmd = defineCommand({
  name: 'listResourceIcon',
  roles: allRoles,
  params: refParams('listResourceIcon', ['resourceids', 'resourcetype']),
  async handler() {
    return listResult('icon', [], 0);
  },
});

// Before login: CloudStack answers these without credentials (its APIAuthenticator commands).

const listIdpsCmd = defineCommand({
  name: 'listIdps',
  roles: allRoles,
  public: true,
  description: 'Lists the SAML identity providers; stacknet has none, so the list is empty.',
  params: {},
  async handler() {
    return listResult('idp', [], 0);
  },
});

const listOauthProviderCmd = defineCommand({
  name: 'listOauthProvider',
  roles: allRoles,
  public: true,
  description: 'Lists the OAuth providers users may log in with (CloudStack 4.19+); stacknet has none.',
  params: {
    id: { type: 'uuid', description: 'the id of the OAuth provider' },
    provider: { type: 'string', description: 'the name of the OAuth provider' },
  },
  async handler() {
    return listResult('oauthprovider', [], 0);
  },
});

const listGuiThemesCmd = defineCommand({
  name: 'listGuiThemes',
  roles: allRoles,
  public: true,
  description: 'Lists the UI themes (CloudStack 4.20+); stacknet keeps none, so the UI uses its default.',
  params: {
    id: { type: 'uuid', description: 'the id of the theme' },
    name: { type: 'string', description: 'the name of the theme' },
    commonname: { type: 'string', description: 'the common name the theme applies to' },
    domainid: { type: 'uuid', description: 'the domain the theme applies to' },
    accountid: { type: 'uuid', description: 'the account the theme applies to' },
    listall: { type: 'boolean', description: 'whether to list every theme' },
    listonlydefaulttheme: { type: 'boolean', description: 'whether to list only the default theme' },
    keyword: { type: 'string', description: 'a search keyword' },
    page: { type: 'integer', description: 'the page to return' },
    pagesize: { type: 'integer', description: 'the size of a page' },
  },
  async handler(p, ctx) {
    await pageOf(ctx.store.db, p);
    return listResult('guiThemes', [], 0);
  },
});

const forgotPasswordCmd = defineCommand({
  name: 'forgotPassword',
  roles: allRoles,
  public: true,
  description:
    'Sends a password-reset token by e-mail (CloudStack 4.20+). stacknet sends no e-mail, so it refuses and says who can reset the password.',
  params: {
    username: { type: 'string', required: true, description: 'the user whose password is forgotten' },
    domain: { type: 'string', description: 'the path of the user’s domain (default ROOT)' },
  },
  async handler() {
    throw new CloudStackError(
      'UnsupportedService',
      'Password reset by e-mail is not available: stacknet sends no e-mail. An administrator of your domain can set a new password with updateUser.',
    );
  },
});

export const commands: AnyCommand[] = [
  listCapabilitiesCmd,
  listLdapConfigurationsCmd,
  cloudianIsEnabledCmd,
  listResourceIconCmd,
  listIdpsCmd,
  listOauthProviderCmd,
  listGuiThemesCmd,
  forgotPasswordCmd,
];
