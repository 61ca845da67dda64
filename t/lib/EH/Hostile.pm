package EH::Hostile;

# The hostile back ends' harness, shared by t/50-hostile-*.t: a 3-server
# HTTPS farm where EXCH2 answers signed-in GET /owa/ with broken or
# malicious bytes, and hostile(), which runs one case and checks what
# every case must hold.
#
# Every case checks that nginx does not crash (the error-log check of
# EH::Nginx: "exited on signal", [alert], [emerg]), that clients get an
# answer in bounded time (where one request waits by nginx's own design,
# that nginx's own timeout answered), that EXCH1 and EXCH3 keep serving,
# that the status page still renders and parses, and what the module
# concluded (ejected or not, by which rule; the verdicts).
#
# The module's defaults (retry on, hold 4k 500ms, scan 32k) unless a case
# says otherwise.  Servers have max_fails=0: nginx's default max_fails=1
# would take EXCH2 out after its first error, before the module has seen
# the three failures it ejects after.  proxy_read_timeout is 3s so that a
# hang shows as nginx's timeout, not as a test that never ends.
#
# EH_ONLY=regex runs only the cases whose name matches.
#
#   use EH::Hostile;       # the farm starts; $farm, $E2 and the helpers

use EH::Test;
use EH::Front;
use Compress::Raw::Zlib;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

use Exporter 'import';
our @EXPORT = qw(
    $farm $E2 %VARS %NO_MAX_FAILS $STATUS $USER
    wanted wire head_len response raw_deflate junk front outcome fe
    status_ok server_of farm_serves count_of ejections log_tail hostile shown
);

our $farm = farm(tls => 1);
our $E2 = $farm->server('EXCH2');
our %VARS = (FESERVER => 'EXCH2', FQDN => 'exch2.contoso.local',
             BESERVER => 'EXCH2');
our %NO_MAX_FAILS = map { $_ => 'max_fails=0' } $farm->names;
our $STATUS = 'location = /status { exchange_health_status; }';
our $USER = 0;

# ------------------------------------------------------------ helpers

sub wanted { !$ENV{EH_ONLY} || $_[0] =~ /$ENV{EH_ONLY}/ }

# A capture as EXCH2 sends it.
sub wire {
    my ($name, %o) = @_;
    return capture($name)->bytes(vars => \%VARS, %o);
}

sub head_len {
    my $i = index $_[0], "\r\n\r\n";
    die "no end of header" if $i < 0;
    return $i + 4;
}

# A response built by hand: status line, [[Name, value], ...], body.
# Content-Length is added unless the headers frame the body themselves
# or no_length => 1.
sub response {
    my (%o) = @_;
    my @h = @{ $o{headers} // [ ['Content-Type', 'text/html; charset=utf-8'],
                                 ['Server', 'Microsoft-IIS/10.0'],
                                 ['X-FEServer', 'EXCH2'] ] };
    push @h, @{ $o{add} || [] };
    my $body = $o{body} // '';
    push @h, ['Content-Length', length $body]
        unless $o{no_length}
            || grep { $_->[0] =~ /^(?:content-length|transfer-encoding)$/i } @h;
    return join('', ($o{status} // 'HTTP/1.1 200 OK') . "\r\n",
                map({ "$_->[0]: $_->[1]\r\n" } @h), "\r\n") . $body;
}

sub raw_deflate {
    my ($data) = @_;
    my ($d) = Compress::Raw::Zlib::Deflate->new(-WindowBits => -MAX_WBITS,
                                                -AppendOutput => 1);
    my $out = '';
    $d->deflate($data, $out) == Z_OK or die 'deflate';
    $d->flush($out) == Z_OK or die 'deflate flush';
    return $out;
}

# Seeded junk (a xorshift of its own, so a failure can be replayed and
# nothing else's rand() is disturbed).
sub junk {
    my ($n, $seed) = @_;
    my $x = 2463534242 + ($seed // 42);
    my $out = '';
    for (1 .. $n) {
        $x ^= ($x << 13) & 0xffffffff;
        $x ^= $x >> 17;
        $x ^= ($x << 5) & 0xffffffff;
        $out .= chr($x & 0xff);
    }
    return $out;
}

# The front end: EH::Front's configuration with the status page,
# max_fails=0 and proxy_read_timeout 3s (read_timeout => to change it).
# Its users make one request each and never opened OWA before: the
# upstream says voters=any, as these tests are about what is found in
# answers; t/19-who-votes.t is about who votes.
sub front {
    my (%o) = @_;
    my $rt = delete $o{read_timeout} // '3s';
    my $location = join "\n        ", "proxy_read_timeout $rt;",
        grep { defined && length } delete $o{location};
    my $server = join "\n    ", $STATUS, grep { defined && length } delete $o{server};
    my $upstream = join "\n    ", 'exchange_health_eject voters=any;',
        grep { defined && length } delete $o{upstream};
    my $ng = EH::Front::nginx($farm,
        params => { %NO_MAX_FAILS, %{ delete $o{params} || {} } },
        server => $server, location => $location, upstream => $upstream, %o);
    $ng->start;
    return $ng;
}

# What a client saw, in a few words: "200", "502", "none (timeout)",
# "200 (body truncated)".
sub outcome {
    my ($r) = @_;
    my $s = $r->{status} // 'none';
    if (my $e = $r->{error}) {
        $e =~ s/:.*//s;
        $s .= " ($e)";
    }
    return $s;
}

sub fe { $_[0]->header('X-FEServer') // '-' }

# The status page still renders (HTML) and parses (JSON, strict UTF-8);
# returns the JSON.
sub status_ok {
    my ($ng, $name) = @_;
    my $h = $ng->request(GET => '/status', timeout => 5);
    ok(($h->{status} // 0) == 200 && ($h->{body} // '') =~ m{</html>\s*\z},
       "$name: the status page renders") or diag outcome($h);
    my ($j, $r, $err) = EH::Front::status_json($ng);
    ok $j, "$name: the status page parses as JSON" or diag $err;
    $j //= {};
    is scalar(@{ $j->{upstreams}[0]{servers} || [] }), 3,
        "$name: it lists the 3 servers";
    return ($j, $h->{body} // '');
}

# A server's record on the status page (JSON).
sub server_of {
    my ($j, $name) = @_;
    my $addr = $farm->server($name)->addr;
    my ($s) = grep { $_->{address} eq $addr }
              @{ $j->{upstreams}[0]{servers} || [] };
    return $s || {};
}

# EXCH1 and EXCH3 keep serving: 6 more OWA requests (a path EXCH2 does
# not break), all answered promptly with 200, 2 or 3 by each.
sub farm_serves {
    my ($ng, $name) = @_;
    my (%by, @bad);
    my $max = 0;
    for (1 .. 6) {
        my $r = $ng->request(GET => '/owa/service.svc?action=GetFolder',
                             signed_in => 'h' . ++$USER, timeout => 5);
        push @bad, outcome($r) unless ($r->{status} // 0) == 200 && !$r->{error};
        $by{ fe($r) }++;
        $max = $r->{elapsed} if $r->{elapsed} > $max;
    }
    is "@bad", '', "$name: 6 more OWA requests all get 200";
    ok(($by{EXCH1} // 0) >= 2 && ($by{EXCH3} // 0) >= 2,
       "$name: EXCH1 and EXCH3 keep serving")
        or diag explain \%by;
    cmp_ok $max, '<', 2, "$name: promptly";
}

sub count_of { my %c; $c{$_}++ for @_; return \%c }

# Ejection lines and the rules that made them.
sub ejections {
    my ($ng) = @_;
    return map { $farm->name_of($_->{addr}) . ":$_->{rule}" }
           EH::Front::changes($ng, 'ejected');
}

sub log_tail {
    my ($ng) = @_;
    my @l = grep { !/\[notice\]/ } split /\n/, $ng->error_log;
    @l = @l[-25 .. -1] if @l > 25;
    return join "\n", map { s/([\x00-\x08\x0b-\x1f\x7f])/sprintf '\\x%02x', ord $1/ger } @l;
}

# One hostile case.
#   name, route => {...} | [routes] (path '^/owa/$', signed in, by default)
#   front => { front() options }, n => 9 requests, path, method, request => {}
#   timeout => client timeout (8), bound => every answer within (4 s)
#   client_timeout_ok => 1: a client may wait out its timeout
#   clients => 'all-200' | sub { my @r = @_; ... }
#   eject => 'rule' (EXCH2 once, by this rule) | undef (nobody ejected)
#   verdicts => { verdict => count, ... } of the n requests | sub
#   plain => 1: the client outcomes are the same with exchange_health_detect
#            off (the module is never worse than no module)
#   check => sub { my ($ng, \@responses, \@verdicts, $json, $html) = @_ }
#   allow => [ qr/.../ ]: error-log lines tolerated
sub hostile {
    my (%c) = @_;
    my $name = $c{name};
    return unless wanted($name);
    my $n = $c{n} // 9;

    my $run = sub {
        my (%extra) = @_;
        $farm->heal;
        $farm->clear_logs;
        $E2->prepend(map { +{ path => '^/owa/$', signed_in => 1, %$_ } }
                     ref $c{route} eq 'ARRAY' ? @{ $c{route} } : $c{route});
        my %f = %{ $c{front} || {} };
        $f{location} = join "\n        ", grep { defined && length }
            $f{location}, $extra{location};
        my $ng = front(%f);
        $ng->allow_in_error_log(@{ $c{allow} }) if $c{allow};
        my @r = map {
            $ng->request($c{method} // 'GET', $c{path} // '/owa/',
                         signed_in => 'u' . ++$USER,
                         accept_encoding => 'gzip, deflate',
                         timeout => $c{timeout} // 8, %{ $c{request} || {} })
        } 1 .. $n;
        return ($ng, @r);
    };

    subtest $name => sub {
        my ($ng, @r) = $run->();
        my @v = EH::Front::wait_verdicts($ng, $n);
        @v = @v[0 .. $n - 1] if @v > $n;

        my @waited = grep { ($_->{error} // '') eq 'timeout' } @r;
        is scalar(@waited), 0, "$name: no client waited out its timeout"
            unless $c{client_timeout_ok};
        my ($max) = sort { $b <=> $a } map { $_->{elapsed} } @r;
        my $bound = $c{bound} // 4;
        cmp_ok $max, '<', $bound, "$name: every answer within ${bound}s";

        if (($c{clients} // '') eq 'all-200') {
            my @bad = grep { ($_->{status} // 0) != 200 || $_->{error} } @r;
            is join(', ', map { outcome($_) } @bad), '',
                "$name: every client gets a whole 200";
        } elsif (ref $c{clients}) {
            $c{clients}->(@r);
        }

        is join(' ', ejections($ng)), defined $c{eject} ? "EXCH2:$c{eject}" : '',
            "$name: " . (defined $c{eject} ? "EXCH2 ejected by rule $c{eject}"
                                           : 'nobody ejected');
        is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
            "$name: no farm-wide fault";

        if (ref $c{verdicts} eq 'HASH') {
            is_deeply count_of(map { $_->{verdict} } @v), $c{verdicts},
                "$name: verdicts"
                or diag join ' ', map { "$_->{status}/$_->{verdict}" } @v;
        } elsif (ref $c{verdicts}) {
            $c{verdicts}->(@v);
        }

        farm_serves($ng, $name);
        my ($j, $html) = status_ok($ng, $name);
        for my $s (qw(EXCH1 EXCH3)) {
            is server_of($j, $s)->{protocols}{owa}{state}, 'healthy',
                "$name: $s healthy for owa";
        }
        $c{check}->($ng, \@r, \@v, $j, $html) if $c{check};

        diag log_tail($ng) unless Test::More->builder->is_passing;
        $ng->stop;

        if ($c{plain}) {
            my ($plain, @p) = $run->(location => 'exchange_health_detect off;');
            is join(', ', map { outcome($_) } @r), join(', ', map { outcome($_) } @p),
                "$name: clients see what they see without the module";
            $plain->stop;
        }
    };
}


# What the status page shows for a name: cut at 64 bytes (an FQDN: 96),
# control bytes as '?', each byte that is not UTF-8 as U+FFFD.
sub shown {
    my $v = substr $_[0], 0, $_[1] // 64;
    $v =~ s/[\x00-\x1f\x7f]/?/g;
    my $out = '';
    while (length $v) {
        if ($v =~ s/\A([\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]
                       |[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]
                       |\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}
                       |\xf4[\x80-\x8f][\x80-\xbf]{2})//x) {
            my $c = $1;
            utf8::decode($c);
            $out .= $c;
        } else {
            substr($v, 0, 1, '');
            $out .= "\x{fffd}";
        }
    }
    return $out;
}


1;
