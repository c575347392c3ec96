"""Signing in (PRODUCT.md "Signing in"): Google and one OpenID Connect provider per tenant, beside
passwords, with django-allauth.

- The providers are the tenant's own settings (tenancy: client ids, encrypted secrets, the issuer);
  `adapter.SocialAccountAdapter.list_apps` builds allauth's apps from them on each request, so
  nothing about sign-in lives in settings or in allauth's SocialApp table.
- Users, social accounts and sessions live in the tenant's schema: a sign-in on tenant A's host can
  only ever match, create or log in a user of tenant A.
- A verified email that belongs to an active user of the tenant signs that user in (and links the
  provider's account to it); an unknown email is refused unless the tenant allows sign-up for its own
  email domains, which creates a Marketer.
- "SSO required" refuses password sign-in to the admin (signin.forms) and ends sessions that were
  not signed in through a provider (signin.middleware), except for the tenant's break-glass admins.
  API tokens are not sessions and keep working.
"""
