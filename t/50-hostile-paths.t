#!/usr/bin/perl

# Hostile back ends through nginx's other paths: unbuffered proxying,
# error pages, an internal redirect, a client that leaves while held.
# The harness and what every case checks: t/lib/EH/Hostile.pm.
# EH_ONLY=regex runs only the cases whose name matches.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Hostile;
use Compress::Raw::Zlib;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

# ------------------------------------------------ with other nginx paths
#
# The hostile answers again, through paths that take the request out of
# the upstream: unbuffered proxying, error pages, an internal redirect to
# a named location that proxies to the same upstream (a second module
# context for one request), a client that leaves while the header is held.

{
    my $page = wire('errorfe-page-en');
    my $ext = ';' . join ';', map { "ext$_=" . ('x' x 100) } 1 .. 80;
    my $fe_body = substr $page, head_len($page);
    my $ext_body = sprintf('%x', 512) . "$ext\r\n" . substr($fe_body, 0, 512) . "\r\n"
                 . EH::Capture::chunk_bytes(substr($fe_body, 512), 1024);

    hostile(name => 'proxy_buffering off: errorFE page',
            front => { location => 'proxy_buffering off;' },
            route => { capture => 'errorfe-page-en', chunked => 100 },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });
    hostile(name => 'proxy_buffering off: 8 KB chunk extension before the errorFE page',
            front => { location => 'proxy_buffering off;' },
            route => { raw => response(add => [['Transfer-Encoding', 'chunked']],
                                       body => $ext_body) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { failure => 3, healthy => 6 });
    hostile(name => 'proxy_buffering off: errorFE page closed while held',
            front => { location => 'proxy_buffering off;' },
            route => { capture => 'errorfe-page-en', truncate => head_len($page) + 50 },
            clients => 'all-200', eject => 'upstream-error',
            verdicts => { rescued => 3, healthy => 6 });

    my $errors = {
        location => "proxy_intercept_errors on;\n        error_page 500 502 504 /50x.html;",
        server => 'location = /50x.html { internal; return 503 "sorry\n"; }' };
    hostile(name => 'error_page for 500, retry off: OWA 500s replaced by nginx\'s page',
            path => '/owa/service.svc', route => { path => '^/owa/service\\.svc',
                                                   capture => 'owa-service-500' },
            front => { %$errors, location => "$errors->{location}\n        exchange_health_retry off;" },
            clients => sub {
                is join(' ', map { $_->{status} . ($_->{body} eq "sorry\n" ? '+page' : '') } @_),
                    '200 500+page 200 200 500+page 200 200 500+page 200',
                    "EXCH2's 500s get the error page";
            },
            eject => 'fe500',
            check => sub {
                my ($ng, $r, $v, $j) = @_;
                my ($ej) = EH::Front::changes($ng, 'ejected');
                like $ej->{line} // '', qr{ on GET /owa/service\.svc, },
                    'the ejection names the request that failed, not the error page';
                is server_of($j, 'EXCH2')->{protocols}{owa}{last_failure}{uri},
                    '/owa/service.svc', 'so does the status page';
            });
    hostile(name => 'error_page for 502: errorFE page closed while held, no next upstream',
            route => { capture => 'errorfe-page-en', truncate => head_len($page) },
            front => { %$errors, location => "$errors->{location}\n        proxy_next_upstream off;" },
            clients => sub {
                is join(' ', map { $_->{status} . ($_->{body} eq "sorry\n" ? '+page' : '') } @_),
                    '200 502+page 200 200 502+page 200 200 502+page 200',
                    "EXCH2's answers get the error page";
            },
            eject => 'upstream-error');

    my $again = join "\n        ", 'proxy_pass https://exchange;', 'proxy_ssl_verify off;',
        'proxy_http_version 1.1;', 'proxy_set_header Connection "";', 'proxy_read_timeout 3s;';
    hostile(name => 'error_page 502 to a named location that proxies again',
            route => { capture => 'errorfe-page-en', truncate => head_len($page) },
            front => { location => "proxy_next_upstream off;\n        proxy_intercept_errors on;\n"
                                 . "        error_page 502 504 = \@again;",
                       server => "location \@again {\n        $again\n    }" },
            clients => 'all-200', eject => 'upstream-error', verdicts => sub {});

    # a hold longer than the client waits (it would end at nginx's read
    # timer, 3s): the client leaves while the header is held
    hostile(name => 'the client leaves while the header is held',
            route => { raw => substr($page, 0, head_len($page) + 50) },
            front => { location => 'exchange_health_hold 4k 10s;' },
            timeout => 1, client_timeout_ok => 1, bound => 1.5,
            clients => sub {
                is join(' ', map { outcome($_) } @_),
                    join(' ', ('200', 'none (timeout)', '200') x 3),
                    'the 3 clients on EXCH2 give up after 1s';
            },
            eject => undef,
            check => sub {
                my ($ng) = @_;
                my @gone;
                wait_until(sub { (@gone = $ng->grep_error_log(
                    qr/client prematurely closed connection.*while reading response header/)) >= 3 },
                    timeout => 5);
                is scalar(@gone), 3, 'nginx saw them go during the hold';
            });
}

done_testing;
