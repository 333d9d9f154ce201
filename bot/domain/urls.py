"""URLs read the way a provider will read them, and the hosts callbot will not point a provider at.

Providers parse URLs with WHATWG URL semantics (what browsers and most HTTP stacks do), and Python's
`urlsplit` disagrees with them on exactly the inputs an attacker would pick: `\\` is `/` to WHATWG
(`https://evil.com\\@good.example/` goes to evil.com), `https:evil.com` means `https://evil.com`,
tabs and newlines are dropped anywhere, and a host like `0x7f000001`, `2130706433`, `0177.0.0.1` or
`127.1` is an IPv4 address. Rather than re-implement every WHATWG repair, `parse` accepts only URLs
on which both readings agree, and refuses the rest with a message naming the rule:

- no whitespace, control or invisible (format) characters, and no backslash, anywhere;
- an absolute URL: scheme `http` or `https` followed by `//` and a host (a relative or scheme-less
  value would be resolved by the provider against a document callbot never sees);
- no `user@` (userinfo): the text before `@` looks like the host to a person, not to the provider;
- the host is an ASCII name (letters, digits, `-`, `_`, dots) or an IP address literal, which is
  read like WHATWG does (hex, octal, 1 to 4 parts) and kept in its canonical form.

`local_reason` then says why a host is not on the public internet: literal loopback, private,
link-local (cloud metadata), CGNAT, multicast, unspecified or reserved addresses (IPv6 too, and
IPv4 embedded in IPv6), and names like `localhost`. No DNS is looked up: a public-looking name
that resolves to a private address is for the account's `allowed_urls` to exclude.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_NUMBER = {10: re.compile(r"^[0-9]+$"), 8: re.compile(r"^[0-7]+$"), 16: re.compile(r"^[0-9a-f]+$")}
# Names that only ever mean a machine inside some network (RFC 6761, RFC 8375, ICANN's .internal).
_LOCAL_SUFFIXES = ("localhost", "local", "localdomain", "internal", "home.arpa")
_METADATA_NAMES = ("metadata.google.internal",)
_METADATA_ADDRESSES = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_ULA = ipaddress.ip_network("fc00::/7")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class UnsafeUrl(ValueError):
    """A URL refused by `parse`: `why` is written for the person who typed it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class Url:
    scheme: str  # lower case
    host: str  # lower-case name, dotted IPv4, or bracketed compressed IPv6
    port: int  # the explicit port, or the scheme's default
    path: str  # as written, "/" when empty
    query: str | None
    fragment: str | None
    address: IPAddress | None  # when the host is an IP address literal


def parse(text: str) -> Url:
    """`text` as the provider will read it, or UnsafeUrl when it could be read another way."""
    if not text:
        raise UnsafeUrl("is empty. Write the full https:// URL.")
    odd = next((c for c in text if _invisible(c)), None)
    if odd is not None:
        raise UnsafeUrl(
            f"contains {_describe(odd)}: providers drop or re-read such characters, so the URL they fetch "
            "would not be the one shown. Encode a space as %20."
        )
    if "\\" in text:
        raise UnsafeUrl(
            "contains a backslash (\\): providers read it as `/`, so the host they would call is not the "
            "one it appears to be. Use `/`."
        )
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        raise UnsafeUrl(
            "is not an absolute URL: the provider would resolve it against the URL of the document it is "
            "running, which callbot cannot check. Write the full https:// URL."
        )
    scheme = scheme_match.group(1).lower()
    if scheme not in SCHEMES:
        raise UnsafeUrl(
            f"uses the `{scheme}:` scheme: only https:// URLs (or http:// where allowed_urls lists it) are accepted."
        )
    rest = text[scheme_match.end() :]
    if not rest.startswith("//") or rest.startswith("///"):
        raise UnsafeUrl(
            f"must have `//` and the host right after `{scheme}:` (providers would guess the host from "
            f"what follows). Write it like `{scheme}://example.com/…`."
        )
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, rest = rest[:end], rest[end:]
    if "@" in authority:
        raise UnsafeUrl(
            "has a user name or password before `@`: providers call the host after the `@`, which is easy "
            "to misread. Remove it (Bandwidth takes credentials as `username=` and `password=`)."
        )
    host_text, port = _split_port(authority, scheme)
    host, address = _host(host_text)
    rest, fragment = _cut(rest, "#")
    path, query = _cut(rest, "?")
    return Url(scheme, host, port, path or "/", query, fragment, address)


def local_reason(url: Url) -> str | None:
    """Why the provider must not be sent to this host (it is not on the public internet), or None."""
    if url.address is not None:
        return _address_reason(url.address)
    name = url.host.removesuffix(".")
    if name in _METADATA_NAMES:
        return "a cloud metadata service name"
    for suffix in _LOCAL_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            if suffix == "localhost":
                return "a `localhost` name (the provider's own machine)"
            return f"a `.{suffix}` name, which only resolves inside a network"
    if "." not in name:
        return "a single-label name, which only resolves inside a network"
    return None


def masked(text: str) -> str:
    """`text` fit to show: a password before `@` masked, invisible characters escaped."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*:[/\\]*)([^/?#\\]*@)", text)
    if match:
        text = match.group(1) + "***@" + text[match.end() :]
    return "".join(c.encode("unicode_escape").decode() if _invisible(c) else c for c in text)


# -- pieces -----------------------------------------------------------------------------------------


def _invisible(c: str) -> bool:
    return c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Zs")


def _describe(c: str) -> str:
    return "a space" if c == " " else f"an invisible or control character (U+{ord(c):04X})"


def _cut(text: str, mark: str) -> tuple[str, str | None]:
    head, found, tail = text.partition(mark)
    return head, (tail if found else None)


def _split_port(authority: str, scheme: str) -> tuple[str, int]:
    if authority.startswith("["):
        close = authority.find("]")
        host, after = (authority, "") if close < 0 else (authority[: close + 1], authority[close + 1 :])
        if after and not after.startswith(":"):
            raise UnsafeUrl(f"has `{after}` after the IPv6 address; only `:port` may follow it.")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = authority.partition(":")
        port_text = port_text_ if colon else None
    if not port_text:  # `https://h:/` is the default port to WHATWG as well
        return host, DEFAULT_PORTS[scheme]
    if not _NUMBER[10].match(port_text) or int(port_text) > 65535:
        raise UnsafeUrl(f"has `{port_text}` as its port: a port is a number from 0 to 65535.")
    return host, int(port_text)


def _host(text: str) -> tuple[str, IPAddress | None]:
    if not text:
        raise UnsafeUrl("has no host. Write it like `https://example.com/…`.")
    if text.startswith("["):
        try:
            if not text.endswith("]") or "%" in text:
                raise ValueError(text)
            v6 = ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise UnsafeUrl(f"has `{text}` as its host, which is not an IPv6 address.") from None
        return f"[{v6.compressed}]", v6
    if not text.isascii():
        raise UnsafeUrl(
            f"has `{text}` as its host: write an international name in its ASCII form (xn--…), so that "
            "everyone reads the same host."
        )
    name = text.lower()
    if not _NAME.match(name):
        raise UnsafeUrl(f"has `{text}` as its host: a host name has only letters, digits, `-`, `_` and dots.")
    if _ends_in_number(name):  # WHATWG reads such a host as IPv4, whatever its form
        v4 = _ipv4(name)
        if v4 is None:
            raise UnsafeUrl(f"has `{text}` as its host, which ends in a number but is not an IPv4 address.")
        return str(v4), v4
    return name, None


def _labels(name: str) -> list[str]:
    labels = name.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    return labels


def _ends_in_number(name: str) -> bool:
    last = _labels(name)[-1]
    return bool(_NUMBER[10].match(last)) or _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    radix = 10
    if part[:2] == "0x":
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if part == "":
        return 0 if radix != 10 else None
    return int(part, radix) if _NUMBER[radix].match(part) else None


def _ipv4(name: str) -> ipaddress.IPv4Address | None:
    """WHATWG's IPv4 parser: 1 to 4 parts, each decimal, 0x hex or 0 octal; the last fills the rest."""
    parts = _labels(name)
    numbers = [_ipv4_number(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    value = values[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(values[:-1]))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(v6: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, the old compatible form)."""
    if v6.ipv4_mapped is not None:
        return v6.ipv4_mapped
    if v6.sixtofour is not None:
        return v6.sixtofour
    if v6 in _NAT64 or (v6 in _IPV4_COMPATIBLE and int(v6) > 1):
        return ipaddress.IPv4Address(int(v6) & 0xFFFFFFFF)
    return None


def _address_reason(address: IPAddress) -> str | None:
    if address in _METADATA_ADDRESSES:
        return "the cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        carried = _embedded_ipv4(address)
        if carried is not None:
            reason = _address_reason(carried)
            return f"{reason} (IPv4 {carried} inside IPv6)" if reason else None
        private = address.is_site_local or address in _ULA
    else:
        if address in _CGNAT:
            return "a shared (CGNAT) address"
        private = any(address in net for net in _RFC1918)
    checks = (
        (address.is_loopback, "a loopback address (the provider's own machine)"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (private, "a private-network address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a special-use address, not on the public internet"),
    )
    return next((why for hit, why in checks if hit), None)
