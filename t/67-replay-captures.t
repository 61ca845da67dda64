#!/usr/bin/perl

# tools/exchange-health-replay on what people really capture
# (t/replay/README): a request and its answer together, as Wireshark's
# "Follow HTTP Stream" and Fiddler's "Save as Text" write them, replayed
# with the request's own method, path and Host; a HAR with a UTF-8 BOM;
# and answers whose body was not saved, which get "body not captured:
# cannot judge" in the verdict line, the JSON and against --expect,
# unless their status and headers alone show the failure.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

use JSON::PP ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $repo = EH::Util::repo_root();
my $tool = "$repo/tools/exchange-health-replay";
my $fix = "$repo/t/replay";

# Run the tool: (exit status, stdout, stderr).
my $runs = 0;
sub replay {
    my (@args) = @_;
    my $n = ++$runs;
    my ($out, $err) = (run_dir() . "/run$n.out", run_dir() . "/run$n.err");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec $^X, $tool, @args or POSIX::_exit(127);
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

# label => "verdict rule server retried request"; the verdict may be the
# words of a capture that cannot be judged
sub lines {
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
my ($rc, $out, $err) = replay(@files);
is $rc, 0, 'every capture read and replayed: exit 0' or diag "$out\n$err";
my $l = lines($out);

my $cj = 'body not captured: cannot judge';
my %want = (
    # Wireshark: a POST, then a GET on the same connection
    'wireshark-stream.txt#1' => 'failure rule=fe500 server=EXCH2 retried=no POST /owa/service.svc',
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
    'no-body.har#3'          => 'failure rule=fe500 server=EXCH2 retried=no POST /owa/service.svc',
    'no-body.har#4'          => "$cj rule=- server=EXCH2 retried=no GET /owa/",
);
for my $k (sort keys %want) {
    is $l->{"$fix/$k"}, $want{$k}, "$k: $want{$k}";
}
is scalar(keys %$l), scalar(keys %want), 'one line per request and per entry';
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
my $j = eval { JSON::PP->new->decode($out) };
ok $j, '--json: JSON' or diag $out;
my %r = map { $_->{label} => $_ } @{ $j->{results} || [] };
my $nb = $r{"$fix/stream-no-body.txt"} || {};
is_deeply [ @$nb{qw(verdict message verdict_without_body method path form)},
            $nb->{body_captured} ? 1 : 0, $nb->{met} ? 1 : 0 ],
    [ 'cannot-judge', $cj, 'healthy', 'GET', '/owa/', 'request and answer', 0, 0 ],
    '--json: cannot-judge, the words, what it was without the body; not met';
ok !defined $nb->{module_verdict}, '--json: no module verdict to mistake for one';
my $ws = $r{"$fix/wireshark-stream.txt#1"} || {};
is_deeply [ @$ws{qw(verdict method path)}, $ws->{body_captured} ? 1 : 0 ],
    [ 'failure', 'POST', '/owa/service.svc', 1 ],
    '--json: the request\'s method and path';

# the request's own method and path win over --method and --path
($rc, $out, $err) = replay('--path', '/ews/Exchange.asmx', '--method', 'PUT',
                           "$fix/fiddler-sessions.txt");
like lines($out)->{"$fix/fiddler-sessions.txt#2"} // '', qr{ GET /owa/\z},
    'a capture with its request: its own method and path';
like $err, qr{--path /ews/Exchange\.asmx not used: the capture has its request \(/owa/\)},
    '... said so';

# a request with no answer after it
my $bad = run_dir() . '/request-only.txt';
spew($bad, "GET /owa/ HTTP/1.1\r\nHost: mail.contoso.com\r\n\r\n");
($rc, $out, $err) = replay($bad);
is $rc, 2, 'a request without its answer: exit 2';
like $err, qr{GET /owa/ has no answer after it}, '... and why';

done_testing;
