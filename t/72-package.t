#!/usr/bin/perl

# The installed Debian package (tools/deb-smoke runs this with
# EH_PACKAGE=installed after "apt install ./...deb"): the module where
# Debian's nginx loads modules, enabled the Debian way, the documentation,
# the example and the replay tool where Debian puts them, and Debian's own
# nginx.conf still passing nginx -t.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

plan skip_all => 'the installed package only (EH_PACKAGE=installed)'
    unless ($ENV{EH_PACKAGE} // '') eq 'installed';

my $pkg = 'libnginx-mod-http-exchange-health';
my $so = '/usr/lib/nginx/modules/ngx_http_exchange_health_module.so';

ok -f $so, 'the module in /usr/lib/nginx/modules';
is sprintf('%o', (stat $so)[2] & 07777), '644', '... mode 0644';
my $avail = '/usr/share/nginx/modules-available/mod-http-exchange-health.conf';
like slurp($avail), qr{^load_module modules/ngx_http_exchange_health_module\.so;$}m,
    'its load_module snippet in modules-available';
is readlink('/etc/nginx/modules-enabled/50-mod-http-exchange-health.conf'), $avail,
    '... enabled in modules-enabled';
ok -f "/usr/share/doc/$pkg/examples/example.conf", 'the example configuration';
ok -f "/usr/share/doc/$pkg/directives.md.gz", 'the directives';
ok -x '/usr/bin/exchange-health-replay', 'the replay tool on the PATH';
ok -f "/usr/share/$pkg/prometheus/exchange-health.rules.yml", 'the alert rules';
like `exchange-health-replay --help 2>&1`, qr/exchange-health-replay/, '... and it runs';
my $out = `nginx -t 2>&1`;
is $?, 0, "Debian's nginx.conf with the module: nginx -t passes" or diag $out;

done_testing;
