#!/usr/bin/perl

# tools/exchange-health-replay, as an operator runs it: the project's
# captures, curl -i outputs, HAR exports (one built here from the
# captures, and t/replay/tiny.har), Wireshark's and Fiddler's text of a
# request and its answer, HARs with a BOM or without their bodies
# (t/replay), an operator's rules and nginx.conf,
# expectations met and not met, and bad input files.  Each run starts
# its own private nginx with the module; the lines and exit status are
# checked, and no input file may change.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

use Digest::MD5 qw(md5_hex);
use File::Path qw(make_path);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $repo = EH::Util::repo_root();
my $tool = "$repo/tools/exchange-health-replay";
my $captures = EH::Util::captures_dir();
my $dir = run_dir() . '/in';
make_path($dir);

# Run the tool: (exit status, stdout, stderr).
my $runs = 0;
sub replay {
    my (@args) = @_;
    my $script = @args && ref $args[0] eq 'HASH' ? shift(@args)->{script} : $tool;
    my $n = ++$runs;
    my ($out, $err) = (run_dir() . "/run$n.out", run_dir() . "/run$n.err");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec $^X, $script, @args or POSIX::_exit(127);
    }
    my $end = time + 90;
    while (waitpid($pid, WNOHANG) == 0) {
        if (time > $end) {
            kill 'TERM', $pid;
            waitpid $pid, 0;
            fail("exchange-health-replay @args: still running after 90 s");
            last;
        }
        sleep 0.05;
    }
    return ($? >> 8, slurp($out), slurp($err));
}

# The text lines: { label verdict rule server retried expected met request }
sub lines {
    my ($out) = @_;
    my %l;
    for (split /\n/, $out) {
        my @f = /\A(\S+)\s+(\S+)\s+rule=(\S+)\s+server=(\S+)\s+retried=(yes|no)\s+
                 (?:expected=(\S+)\s(ok|FAILED)\s+)?(\S+\s\S+)\z/x
            or do { fail("an output line as documented: $_"); next };
        my %h;
        @h{qw(label verdict rule server retried expected met request)} = @f;
        $l{ $h{label} } = \%h;
    }
    return \%l;
}

sub checksums {
    return { map { $_ => -f $_ ? md5_hex(slurp($_)) : -e $_ ? 'dir' : 'none' } @_ };
}

# ---------------------------------------------------------------- inputs

my @real = sort glob "$captures/*.http";
ok @real >= 20, 'the project\'s captures (' . scalar(@real) . ')';

# What each capture is: verdict, rule, whether it carries X-FEServer.
my %want = (
    'errorfe-redirect'          => [ failure => 'errorfe-redirect' ],
    'errorfe-page-en'           => [ failure => 'errorfe-page' ],
    'errorfe-page-de'           => [ failure => 'errorfe-page' ],
    'errorfe-page-fr'           => [ failure => 'errorfe-page' ],
    'owa-service-500'           => [ failure => 'fe500' ],
    'owa-service-500-chunked'   => [ failure => 'fe500' ],
    'ecp-json-500'              => [ failure => 'ecp-json' ],  # before fe500
    'ecp-aspnet-error'          => [ failure => 'fe500' ],
    'errorfe-redirect-quota'    => [ 'user-failure' => 'errorfe-redirect' ],
    'errorfe-page-quota'        => [ 'user-failure' => 'errorfe-page' ],
    'owa-service-500-nomailbox' => [ 'user-failure' => 'fe500' ],
    'iis-500'                   => [ failure => 'iis-500' ],
    'ews-500-internal'          => [ failure => 'ews-server-fault' ],
    'ews-500-busy'              => [ 'user-failure' => 'soap-fault' ],
    # a refusal of credentials is the server's only for a session another
    # server accepted: the replay's session got signed-in answers from the
    # captures before it (ecp-page, ...), so it is
    'ews-401-invalid-token'     => [ failure => 'bearer-rejected' ],
    map({ $_ => [ healthy => '-' ] } qw(owa-logon owa-redirect-logon owa-signed-in
        owa-service-ok ecp-page healthcheck eas-options ews-ok owa-script)),
);
my %no_feserver = map { $_ => 1 } qw(owa-logon owa-redirect-logon owa-script iis-500);

# curl -i outputs, made from the captures
sub cap { slurp("$captures/$_[0].http") =~ s/\{\{FESERVER\}\}/$_[1] \/\/ 'EXCH4'/ger
                                        =~ s/\{\{[A-Z]+\}\}/x/gr }
sub head_of { my ($h) = split /\r\n\r\n/, $_[0], 2; "$h\r\n\r\n" }
sub body_of { (split /\r\n\r\n/, $_[0], 2)[1] }
sub fix_length {     # placeholders replaced: Content-Length as the body is
    my $r = shift;
    my $len = length body_of($r);
    $r =~ s/(\r\nContent-Length: )\d+/$1$len/i;
    return $r;
}

my %curl = (
    # a file whose line endings were changed to LF
    'curl-lf.txt'        => [ fix_length(cap('errorfe-redirect')) =~ s/\r\n/\n/gr,
                              failure => 'errorfe-redirect', '/owa/' ],
    # curl -i of a POST: "100 Continue" first
    'curl-continue.txt'  => [ "HTTP/1.1 100 Continue\r\n\r\n" . fix_length(cap('owa-service-500')),
                              failure => 'fe500', '/owa/' ],
    # curl -i -L: the redirect's header, then the page it led to
    'curl-follow.txt'    => [ head_of(fix_length(cap('errorfe-redirect'))) . fix_length(cap('errorfe-page-fr')),
                              'not-judged' => '-', '/owa/auth/errorFE.aspx' ],
    # curl -i --compressed: Content-Encoding kept, the body decoded
    'curl-compressed.txt' => [ fix_length(cap('errorfe-page-de'))
                                  =~ s/\r\nContent-Length: \d+/\r\nContent-Encoding: gzip\r\nContent-Length: 3071/r,
                              failure => 'errorfe-page', '/owa/' ],
    # curl -i of a chunked answer: the header says chunked, the body is not
    'curl-chunked.txt'   => [ fix_length(cap('owa-signed-in'))
                                  =~ s/\r\nContent-Length: \d+/\r\nTransfer-Encoding: chunked/r,
                              healthy => '-', '/owa/' ],
    # curl -I: a header and no body
    'curl-head.txt'      => [ head_of(fix_length(cap('errorfe-redirect-quota'))),
                              'user-failure' => 'errorfe-redirect', '/owa/' ],
);
for my $f (sort keys %curl) {
    spew("$dir/$f", $curl{$f}[0]);
}
# a raw capture gzip'd and chunked on the wire, as the harness writes it
spew("$dir/gzip-chunked.http", capture('errorfe-page-en')->bytes(
    vars => { FESERVER => 'EXCH4' }, gzip => 1, chunked => 700));

# A HAR of a session, built from the captures the way browsers save them:
# bodies decoded (text, or base64), the wire's Content-Encoding,
# Transfer-Encoding and Content-Length still among the headers.
sub har_entry {
    my (%o) = @_;
    my $p = EH::Capture->parse(capture($o{capture})->bytes(
        vars => { FESERVER => $o{server} // 'EXCH3', FQDN => 'exch3.contoso.local',
                  BESERVER => 'EXCH3' }), file => $o{capture});
    my $body = $p->decoded_body;
    my @h = map { { name => lc $_->[0], value => $_->[1] } } @{ $p->headers };
    push @h, { name => 'content-encoding', value => 'gzip' },
             { name => 'transfer-encoding', value => 'chunked' } if $o{gzip};
    my %content = (size => length $body, mimeType => $p->header('Content-Type') // '');
    if ($o{base64}) {
        @content{qw(text encoding)} = (encode_base64($body, ''), 'base64');
    }
    else {
        utf8::decode($body);
        $content{text} = $body;
    }
    return {
        startedDateTime => '2025-11-25T10:00:00.000Z', time => 20,
        request => { method => $o{method} // 'GET', httpVersion => 'http/2.0',
                     url => ($o{host} // 'https://mail.contoso.com') . $o{path},
                     headers => [ { name => 'cookie', value => 'cadata=(removed)' } ],
                     $o{post} ? (postData => { mimeType => 'application/json', text => $o{post} })
                              : () },
        response => { status => $p->status + 0, statusText => '', httpVersion => 'http/2.0',
                      headers => \@h, content => \%content },
    };
}
my @har = (
    har_entry(capture => 'errorfe-redirect', path => '/owa/'),
    har_entry(capture => 'errorfe-page-de', path => '/owa/auth/errorFE.aspx?httpCode=500',
              gzip => 1),
    har_entry(capture => 'owa-service-500-nomailbox', method => 'POST',
              path => '/owa/service.svc?action=GetFolder', post => '{"a":1}'),
    har_entry(capture => 'owa-service-500', method => 'POST',
              path => '/owa/service.svc?action=CreateItem', post => '{"b":2}'),
    har_entry(capture => 'owa-signed-in', path => '/owa/', base64 => 1, gzip => 1),
    har_entry(capture => 'owa-script', path => '/owa/prem/15.1.2507.6/scripts/boot.worker.js'),
    har_entry(capture => 'healthcheck', path => '/favicon.ico', host => 'https://cdn.contoso.com'),
    har_entry(capture => 'ecp-json-500', method => 'POST', path => '/ecp/DDI/DDIService.svc/GetList',
              post => '{}', server => 'EXCH1'),
    { request => { method => 'GET', url => 'https://mail.contoso.com/owa/blocked.gif' },
      response => { status => 0, statusText => '', headers => [], content => { size => 0 } } },
);
spew("$dir/session.har", JSON::PP->new->utf8->canonical->pretty->encode(
    { log => { version => '1.2', creator => { name => 't/60-replay.t' }, entries => \@har } }));
my %har_want = (   # entry => [ verdict, rule, server, retried, request ]
    1 => [ failure        => 'errorfe-redirect', 'EXCH3', 'yes', 'GET /owa/' ],
    # the page the redirect led to: anonymous, rendered by any server
    2 => [ 'not-judged'   => '-',                '-',     'no',  'GET /owa/auth/errorFE.aspx' ],
    3 => [ 'user-failure' => 'fe500',            'EXCH3', 'no',  'POST /owa/service.svc' ],
    4 => [ failure        => 'fe500',            'EXCH3', 'no',  'POST /owa/service.svc' ],
    5 => [ healthy        => '-',                'EXCH3', 'no',  'GET /owa/' ],
    6 => [ healthy        => '-',                '-',     'no',  'GET /owa/prem/15.1.2507.6/scripts/boot.worker.js' ],
    8 => [ failure        => 'ecp-json',         'EXCH1', 'no',  'POST /ecp/DDI/DDIService.svc/GetList' ],
);
my $tiny = "$repo/t/replay/tiny.har";

# The expectations file: general lines first, the last matching line counts.
spew("$dir/expect.txt", <<'EXPECT');
# the project's captures
*.http                          healthy rule=-
iis-500.http                    failure rule=iis-500 retried=yes
errorfe-redirect*.http          failure rule=errorfe-redirect retried=yes
errorfe-page-*.http             failure rule=errorfe-page retried=yes
owa-service-500*.http           failure rule=fe500
ecp-*-*.http                    failure rule=fe500
ecp-json-500.http               failure rule=ecp-json
*quota.http                     user-failure retried=no     # one user's mailbox
owa-service-500-nomailbox.http  user-failure rule=fe500
ecp-page.http                   healthy
ews-500-internal.http           failure rule=ews-server-fault retried=yes
ews-500-busy.http               user-failure rule=soap-fault
ews-401-invalid-token.http      failure rule=bearer-rejected
gzip-chunked.http               failure rule=errorfe-page server=EXCH4

# curl -i outputs
curl-*.txt                      failure
curl-chunked.txt                healthy
curl-follow.txt                 not-judged    # errorFE.aspx is anonymous
curl-head.txt                   user-failure

# HARs: every entry of a file, then single entries
session.har                     failure
session.har#2                   not-judged
session.har#3                   user-failure rule=fe500
session.har#[56]                healthy
session.har#4                   failure retried=no
tiny.har#1                      failure rule=errorfe-redirect server=EXCH1
tiny.har#2                      healthy
EXPECT

my @inputs = (@real, (map { "$dir/$_" } sort keys %curl), "$dir/gzip-chunked.http",
              "$dir/session.har", $tiny);
my $sums = checksums(@inputs, "$dir/expect.txt");

# ---------------------------------------------------------------- everything at once

my $t0 = time;
my ($rc, $out, $err) = replay('--expectations', "$dir/expect.txt", @inputs);
is $rc, 0, 'every capture, curl output and HAR entry: exit 0, every expectation met'
    or diag "stdout:\n$out\nstderr:\n$err";
my $l = lines($out);
is scalar(keys %$l), @real + keys(%curl) + 1 + keys(%har_want) + 2,
    'one line per capture and per /owa or /ecp HAR entry';

for my $f (@real) {
    (my $name = $f) =~ s{.*/}{};
    $name =~ s/\.http\z//;
    my $w = $want{$name};
    ok $w, "$name: the test knows what it is" or next;
    my $r = $l->{$f} or do { fail("$name: a line"); next };
    is "$r->{verdict} $r->{rule}", "$w->[0] $w->[1]", "$name: $w->[0], rule $w->[1]";
    is $r->{server}, $no_feserver{$name} ? '-' : 'EXCH2',
        "$name: the server name in its X-FEServer";
    is $r->{retried}, $w->[0] eq 'failure' ? 'yes' : 'no',
        "$name: " . ($w->[0] eq 'failure' ? 'retried on the other server' : 'not retried');
    is $r->{request}, 'GET /owa/', "$name: replayed as GET /owa/";
    is $r->{met}, 'ok', "$name: expectation met";
}

for my $f (sort keys %curl) {
    my $r = $l->{"$dir/$f"} or do { fail("$f: a line"); next };
    my (undef, $verdict, $rule, $path) = @{ $curl{$f} };
    my $server = $verdict eq 'not-judged' ? '-' : 'EXCH4';
    is "$r->{verdict} $r->{rule} $r->{server}", "$verdict $rule $server", "$f: $verdict, $rule, $server";
    is $r->{request}, ($f eq 'curl-head.txt' ? 'HEAD' : 'GET') . " $path", "$f: $r->{request}";
}
like $err, qr{curl-follow\.txt: replayed at /owa/auth/errorFE\.aspx, where the redirect curl followed led},
    'curl -L: the page is replayed where the redirect led';
like $err, qr{curl-compressed\.txt: the body was already decoded \(curl --compressed\)},
    'curl --compressed: said so';
like $err, qr{curl-chunked\.txt: the chunked framing was already removed}, 'curl of a chunked answer: said so';
like $err, qr{curl-continue\.txt: the last of 2 answers in the file is replayed \(100 before it\)},
    'curl -i of a POST: 100 Continue skipped';
like $err, qr{curl-head\.txt: no body: replayed as the answer to a HEAD request}, 'curl -I: HEAD';
is $l->{"$dir/gzip-chunked.http"}{verdict}, 'failure', 'a gzip\'d chunked raw capture: failure';

for my $n (sort keys %har_want) {
    my $r = $l->{"$dir/session.har#$n"} or do { fail("session.har#$n: a line"); next };
    is join(' ', @$r{qw(verdict rule server retried request)}), join(' ', @{ $har_want{$n} }),
        "session.har#$n: @{ $har_want{$n} }";
}
ok !$l->{"$dir/session.har#7"} && !$l->{"$dir/session.har#9"},
    'HAR: entries not under /owa or /ecp, and one with no answer, are not replayed';
like $err, qr{session\.har: 7 of 9 entries replayed \(the /owa and /ecp ones\), skipped #9 GET /owa/blocked\.gif \(no answer recorded: status 0\); a browser saves bodies decoded},
    'HAR: what was replayed and skipped, and that bodies go decoded';
like $err, qr{session\.har#4: not retried: a POST that writes \(not an EWS or OWA Get, Find or Sync call\) is retried only with exchange_health_retry on non_idempotent},
    'HAR: why a POST was not retried';
is join(' ', map { "$_->{verdict}/$_->{rule}/$_->{server}/$_->{met}" } @$l{"$tiny#1", "$tiny#2"}),
    'failure/errorfe-redirect/EXCH1/ok healthy/-/EXCH1/ok', 't/replay/tiny.har: its two OWA entries';
is_deeply checksums(keys %$sums), $sums, 'no input file changed';
note sprintf 'the whole set: %d captures in %.1f s', scalar keys %$l, time - $t0;

# ---------------------------------------------------------------- --expect

($rc, $out, $err) = replay('--expect', 'healthy', "$captures/errorfe-redirect.http",
                           "$captures/owa-signed-in.http");
is $rc, 1, '--expect healthy on a failure: exit 1';
$l = lines($out);
is "$l->{\"$captures/errorfe-redirect.http\"}{expected} $l->{\"$captures/errorfe-redirect.http\"}{met}",
    'healthy FAILED', '... its line says expected=healthy FAILED';
is $l->{"$captures/owa-signed-in.http"}{met}, 'ok', '... the healthy page\'s line says ok';

($rc, $out) = replay('--expect', 'failure rule=errorfe-redirect retried=yes', '--json',
                     "$captures/errorfe-redirect.http", "$dir/session.har");
is $rc, 1, '--expect for several captures, one not met: exit 1';
my $j = eval { JSON::PP->new->decode($out) };
ok $j, '--json: JSON' or diag $out;
my ($first) = grep { $_->{label} eq "$captures/errorfe-redirect.http" } @{ $j->{results} || [] };
is_deeply [ @$first{qw(verdict rule server module_verdict client_status captured_status
                        error expected replayed)}, $first->{retried} ? 1 : 0, $first->{met} ? 1 : 0 ],
    [ 'failure', 'errorfe-redirect', 'EXCH2', 'rescued', 200, 302,
      'Microsoft.Exchange.Diagnostics.ExAssertException', 'failure,rule=errorfe-redirect,retried=yes',
      'as captured', 1, 1 ],
    '--json: the fields of a capture that was rescued';
is scalar(grep { !$_->{met} } @{ $j->{results} }), 6, '--json: the HAR entries that are not that, not met';
ok !$j->{ok}, '--json: ok is false';

($rc, $out) = replay('--expect', 'failure', "$captures/ecp-json-500.http", "$dir/curl-lf.txt");
is $rc, 0, '--expect failure met: exit 0' or diag $out;

# ---------------------------------------------------------------- an operator's rules

# A farm's own maintenance page, unknown to the built-in rules
my $maint = "<html><head><title>Wartung</title></head><body>\r\n"
          . "<h1>Wartungsarbeiten: Outlook im Web ist bis 22 Uhr nicht erreichbar</h1>\r\n"
          . "</body></html>\r\n";
spew("$dir/maintenance.http", "HTTP/1.1 503 Service Unavailable\r\n"
     . "Content-Type: text/html; charset=utf-8\r\nX-FEServer: EXCH5\r\n"
     . 'Content-Length: ' . length($maint) . "\r\n\r\n$maint");
spew("$dir/rules.conf", <<'RULES');
# our own maintenance page (set by the load balancer team's script)
exchange_health_rule maintenance-page status=503
                     "body=Wartungsarbeiten:";
RULES
my @check = ("$dir/maintenance.http", "$captures/owa-signed-in.http",
             "$captures/owa-logon.http", "$captures/ecp-page.http");
$sums = checksums(@check, "$dir/rules.conf");

($rc, $out) = replay('-q', "$dir/maintenance.http");
$l = lines($out);
is $l->{"$dir/maintenance.http"}{verdict}, 'healthy', 'a custom error page: healthy for the built-in rules';

spew("$dir/expect-rules.txt", "maintenance.http  failure rule=maintenance-page\n");
($rc, $out, $err) = replay('--config', "$dir/rules.conf", '--expect', 'healthy',
                           '--expectations', "$dir/expect-rules.txt", @check);
is $rc, 0, 'with the operator\'s rule: every expectation met' or diag "$out\n$err";
$l = lines($out);
is join(' ', @{ $l->{"$dir/maintenance.http"} }{qw(verdict rule server retried)}),
    'failure maintenance-page EXCH5 yes', '... the page is a failure of its rule, retried';
is join(' ', map { $l->{$_}{verdict} } @check[1 .. 3]), 'healthy healthy healthy',
    '... the healthy pages stay healthy';
like $err, qr{config \Q$dir\E/rules\.conf: 1 directive taken \(1 at http level\)},
    '... what is taken from the configuration is said';

# docs/example.conf: the directives of its server and locations, not the rest
($rc, $out, $err) = replay('--config', "$repo/docs/example.conf", '--show-config');
is $rc, 0, '--show-config: exit 0';
like $out, qr{^    location / \{  # from \S+/docs/example\.conf:\d+\n.*^        exchange_health_retry on non_idempotent;  # from \S+docs/example\.conf:\d+$}ms,
    '--show-config: the retry of example.conf\'s location /, and where it comes from';
like $out, qr{^    location ~\* \^/rpc/ \{.*^        proxy_request_buffering off;}ms,
    '--show-config: the proxy settings that decide a retry are taken too';
unlike $out, qr{exchange_health_zone|exchange_health zone=|exchange_health_eject|load_module|ssl_certificate},
    '--show-config: zone, upstream, TLS and the rest are not';
like $err, qr{not taken, not about judging an answer: exchange_health_zone \(line \d+\), exchange_health \(line \d+\), exchange_health_eject \(line \d+\)},
    '--show-config: says what is not taken';

($rc, $out) = replay('-q', '--config', "$repo/docs/example.conf", "$dir/session.har");
$l = lines($out);
is join(' ', map { $l->{"$dir/session.har#$_"}{retried} } 4, 8), 'yes yes',
    'example.conf (exchange_health_retry on non_idempotent): the failed POSTs are retried';
is $l->{"$dir/session.har#3"}{retried}, 'no', '... one user\'s failure is not';
is_deeply checksums(keys %$sums), $sums, 'no input or configuration file changed';

# ---------------------------------------------------------------- bad input

spew("$dir/notes.txt", "Hello helpdesk,\nthe user says OWA is broken.\n");
spew("$dir/cut.har", substr(slurp("$dir/session.har"), 0, 5000));
spew("$dir/empty.har", qq({"log": {"version": "1.2", "entries": []}}\n));
spew("$dir/nolog.har", qq({"entries": []}\n));
spew("$dir/cut.http", substr(fix_length(cap('errorfe-page-en')), 0, 3000));
spew("$dir/cut-header.http", "HTTP/1.1 302 Found\r\nLocation: /owa/auth/errorFE.aspx\r\n");
spew("$dir/cut-chunks.http", substr(cap('owa-service-500-chunked'), 0,
                                    length(head_of(cap('owa-service-500-chunked'))) + 100));
spew("$dir/empty.http", '');
spew("$dir/huge-chunk.http", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              . "ffffffffffffffffff\r\nx\r\n0\r\n\r\n");
my %bad = (
    "$dir/huge-chunk.http" => qr/bad chunked body: a chunk size of 18 hex digits/,
    "$dir/missing.http"    => qr/no such file/,
    "$dir/notes.txt"       => qr/not an HTTP response, curl -i output or HAR file: it begins with "Hello helpdesk,"/,
    "$dir/cut.har"         => qr/not valid JSON \(a HAR file is JSON\): it ends after 5000 bytes, in the middle of the data: cut short\?/,
    "$dir/empty.har"       => qr/the HAR has no entries/,
    "$dir/nolog.har"       => qr/not a HAR file: no "log" object/,
    "$dir/cut.http"        => qr/the body has \d+ bytes where Content-Length says \d+: the file is cut short/,
    "$dir/cut-header.http" => qr/the header block at line 1 has no end .*cut short/,
    "$dir/cut-chunks.http" => qr/bad chunked body: .*cut short/,
    "$dir/empty.http"      => qr/empty file/,
    $dir                   => qr/is a directory/,
);
$sums = checksums(keys %bad);
($rc, $out, $err) = replay(sort keys %bad);
is $rc, 2, 'bad input files only: exit 2';
is $out, '', '... nothing on stdout';
for my $f (sort keys %bad) {
    like $err, qr/^exchange-health-replay: \Q$f\E: $bad{$f}/m, "bad input: $f named, and what is wrong";
}
is_deeply checksums(keys %$sums), $sums, '... none of them changed';

($rc, $out, $err) = replay("$dir/notes.txt", "$captures/errorfe-redirect.http");
is $rc, 2, 'a bad file with a good one: exit 2';
like $out, qr{^\Q$captures\E/errorfe-redirect\.http\s+failure\s+rule=errorfe-redirect}m,
    '... the good one is replayed all the same';

# bad configurations: named with the line
spew("$dir/bad-rule.conf", "# a typo\n\nexchange_health_rule broken stauts=500;\n");
($rc, $out, $err) = replay('--config', "$dir/bad-rule.conf", "$captures/errorfe-redirect.http");
is $rc, 2, 'a rule nginx refuses: exit 2';
like $err, qr{nginx refused the configuration:\n.*invalid parameter "stauts=500" in rule "broken".* in \Q$dir\E/bad-rule\.conf:3}s,
    '... with nginx\'s message, pointing at the operator\'s file and line';
spew("$dir/bad-syntax.conf", "http {\n    server {\n        exchange_health_scan 16k;\n");
($rc, $out, $err) = replay('--config', "$dir/bad-syntax.conf", "$captures/errorfe-redirect.http");
is $rc, 2, 'a configuration that ends early: exit 2';
like $err, qr{\Q$dir\E/bad-syntax\.conf: unexpected end of file}, '... said, naming the file';
($rc, $out, $err) = replay('--expect', 'broken', "$captures/errorfe-redirect.http");
is $rc, 2, 'an expectation that is not one: exit 2';
like $err, qr{--expect: "broken" is not an expectation}, '... said';

# ---------------------------------------------------------------- real captures

# What people really capture (t/replay/README): a request and its answer
# together, as Wireshark's "Follow HTTP Stream" and Fiddler's "Save as
# Text" write them, replayed with the request's own method, path and
# Host; a HAR with a UTF-8 BOM; answers whose body was not saved, which
# get "body not captured: cannot judge" in the verdict line, the JSON
# and against --expect, unless their status and headers alone show the
# failure.
my $fix = "$repo/t/replay";

# label => "verdict rule server retried request"; the verdict may be the
# words of a capture that cannot be judged
sub request_lines {
    my ($out) = @_;
    my %l;
    for (split /\n/, $out) {
        my ($label, $rest) = /\A(\S+)\s+(.*)\z/ or next;
        $rest =~ s/\s+/ /g;
        $rest =~ s/ expected=\S+ (?:ok|FAILED)//;
        $l{$label} = $rest;
    }
    return \%l;
}

my @files = map { "$fix/$_" } qw(wireshark-stream.txt fiddler-sessions.txt
                                 stream-no-body.txt bom.har no-body.har);
($rc, $out, $err) = replay(@files);
is $rc, 0, 'every capture read and replayed: exit 0' or diag "$out\n$err";
my $rl = request_lines($out);

my $cj = 'body not captured: cannot judge';
my %rwant = (
    # Wireshark: a POST, then a GET on the same connection
    'wireshark-stream.txt#1' => 'failure rule=fe500 server=EXCH2 retried=yes POST /owa/service.svc',
    'wireshark-stream.txt#2' => 'healthy rule=- server=EXCH2 retried=no GET /owa/',
    # Fiddler: the whole URL in the request line, sessions between dashes
    'fiddler-sessions.txt#1' => 'failure rule=ecp-json server=EXCH2 retried=yes GET /ecp/DDI/DDIService.svc/GetList',
    'fiddler-sessions.txt#2' => 'failure rule=errorfe-redirect server=EXCH2 retried=yes GET /owa/',
    # the errorFE page's header without its body
    'stream-no-body.txt'     => "$cj rule=- server=EXCH2 retried=no GET /owa/",
    'bom.har#1'              => 'failure rule=errorfe-redirect server=EXCH1 retried=yes GET /owa/',
    'bom.har#2'              => 'healthy rule=- server=EXCH1 retried=no POST /owa/service.svc',
    # no body saved: the errorFE page and a healthy page cannot be told
    # apart; a redirect to errorFE.aspx and a 500 naming the server can
    'no-body.har#1'          => "$cj rule=- server=EXCH2 retried=no GET /owa/",
    'no-body.har#2'          => 'failure rule=errorfe-redirect server=EXCH2 retried=yes GET /owa/',
    'no-body.har#3'          => 'failure rule=fe500 server=EXCH2 retried=yes POST /owa/service.svc',
    'no-body.har#4'          => "$cj rule=- server=EXCH2 retried=no GET /owa/",
);
for my $k (sort keys %rwant) {
    is $rl->{"$fix/$k"}, $rwant{$k}, "$k: $rwant{$k}";
}
is scalar(keys %$rl), scalar(keys %rwant), 'one line per request and per entry';
like $err, qr{no-body\.har#1: body not captured: cannot judge: the module said healthy without it},
    'what the module said without the body is on stderr, not in the verdict';
like $err, qr{no-body\.har#2: failure without the body: found in the status and headers},
    'a failure the headers show stands without the body';
unlike $err, qr{bytes after the (?:body|last chunk) ignored},
    'the next request and Fiddler\'s blank lines are not taken for trailing bytes';

# --expect: what cannot be judged meets no verdict but its own
($rc, $out) = replay('--expect', 'healthy', "$fix/no-body.har");
is $rc, 1, '--expect healthy, bodies not saved: exit 1';
like $out, qr{no-body\.har#4\s+\Q$cj\E\s.*expected=healthy FAILED}, '... the healthy page\'s entry FAILED';
($rc, $out) = replay('--expect', 'cannot-judge', "$fix/stream-no-body.txt");
is $rc, 0, '--expect cannot-judge: met' or diag $out;

# --json
($rc, $out) = replay('--json', '--expect', 'healthy', "$fix/stream-no-body.txt",
                     "$fix/wireshark-stream.txt");
$j = eval { JSON::PP->new->decode($out) };
ok $j, '--json: JSON' or diag $out;
my %rr = map { $_->{label} => $_ } @{ $j->{results} || [] };
my $nb = $rr{"$fix/stream-no-body.txt"} || {};
is_deeply [ @$nb{qw(verdict message verdict_without_body method path form)},
            $nb->{body_captured} ? 1 : 0, $nb->{met} ? 1 : 0 ],
    [ 'cannot-judge', $cj, 'healthy', 'GET', '/owa/', 'request and answer', 0, 0 ],
    '--json: cannot-judge, the words, what it was without the body; not met';
ok !defined $nb->{module_verdict}, '--json: no module verdict to mistake for one';
my $ws = $rr{"$fix/wireshark-stream.txt#1"} || {};
is_deeply [ @$ws{qw(verdict method path)}, $ws->{body_captured} ? 1 : 0 ],
    [ 'failure', 'POST', '/owa/service.svc', 1 ],
    '--json: the request\'s method and path';

# the request's own method and path win over --method and --path
($rc, $out, $err) = replay('--path', '/ews/Exchange.asmx', '--method', 'PUT',
                           "$fix/fiddler-sessions.txt");
like request_lines($out)->{"$fix/fiddler-sessions.txt#2"} // '', qr{ GET /owa/\z},
    'a capture with its request: its own method and path';
like $err, qr{--path /ews/Exchange\.asmx not used: the capture has its request \(/owa/\)},
    '... said so';

# a request with no answer after it
my $req_only = run_dir() . '/request-only.txt';
spew($req_only, "GET /owa/ HTTP/1.1\r\nHost: mail.contoso.com\r\n\r\n");
($rc, $out, $err) = replay($req_only);
is $rc, 2, 'a request without its answer: exit 2';
like $err, qr{GET /owa/ has no answer after it}, '... and why';

# ---------------------------------------------------------------- installed

# As docs/replay.md installs it: the script and the harness's EH/ in lib/
my $share = run_dir() . '/share/exchange-health';
make_path("$share/lib/EH");
spew("$share/exchange-health-replay", slurp($tool));
chmod 0755, "$share/exchange-health-replay";
for my $pm (glob "$repo/t/lib/EH/*.pm") {
    (my $name = $pm) =~ s{.*/}{};
    spew("$share/lib/EH/$name", slurp($pm));
}
($rc, $out, $err) = replay({ script => "$share/exchange-health-replay" },
    '--module', EH::Nginx::module_path() || 'static', '--expect', 'failure rule=errorfe-page',
    "$captures/errorfe-page-fr.http");
is $rc, 0, 'an installed copy (script and lib/EH) works' or diag $err;

done_testing;
