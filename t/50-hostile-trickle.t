#!/usr/bin/perl

# Hostile back ends: bytes trickled forever, slowly or not at all.
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

# ------------------------------------------------ trickles
#
# proxy_read_timeout 2s.  While nginx reads a header, proxy_read_timeout
# runs from the moment the request was sent: a header trickled forever is
# cut at 2 s and the request retried.  The module holds a header for its
# body 500 ms at most (its own timer, ended before nginx's); nginx then
# reads the body at the server's pace, and no timeout of nginx ends it
# unless the server stops sending.

# Run $code in a child; the returned sub waits for it and gives back
# what it returned (a hash of plain values).
my $BG = 0;
sub in_background {
    my ($code) = @_;
    my $file = run_dir() . '/bg-' . ++$BG . '.json';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $res = eval { $code->() } // { error => "died: $@" };
        spew($file, EH::Util::json_encode($res));
        POSIX::_exit(0);
    }
    return sub { waitpid $pid, 0; EH::Util::json_decode(slurp($file)) };
}

sub summary {
    my ($r, $t0) = @_;
    return { status => $r->{status}, error => $r->{error}, server => fe($r),
             elapsed => $r->{elapsed},
             first_byte => defined $r->{first_byte} ? $r->{first_byte} - $t0 : undef,
             outcome => outcome($r) };
}

# Round robin's order, fresh nginx: requests 2, 5 and 8 go to EXCH2.
# Those run in the background, started 0.15 s apart so that round robin
# has picked their server before the next request; the others (EXCH1,
# EXCH3) run meanwhile and must be quick.
sub trickle_case {
    my (%c) = @_;
    my $name = $c{name};
    return unless wanted($name);
    subtest $name => sub {
        $farm->heal;
        $farm->clear_logs;
        $E2->prepend({ path => '^/owa/$', signed_in => 1, %{ $c{route} } });
        my $ng = front(read_timeout => '2s', location => $c{location});

        my (@wait, @quick);
        for my $i (1 .. 9) {
            my $user = 't' . ++$USER;
            if ($i % 3 == 2) {
                push @wait, in_background(sub {
                    my $t0 = time;
                    my $r = $ng->request(GET => '/owa/', signed_in => $user,
                                         timeout => $c{timeout} // 6);
                    return summary($r, $t0);
                });
                sleep 0.15;
            } else {
                my $t0 = time;
                push @quick, summary($ng->request(GET => '/owa/', signed_in => $user,
                                                  timeout => 5), $t0);
            }
        }
        is join(' ', map { "$_->{outcome}/" . ($_->{server} =~ s/EXCH[13]/other/r) } @quick),
           join(' ', ('200/other') x 6),
           "$name: meanwhile, EXCH1 and EXCH3 answer the others";
        my ($max) = sort { $b <=> $a } map { $_->{elapsed} } @quick;
        cmp_ok $max, '<', 1, "$name: promptly";

        my @r = map { $_->() } @wait;
        is $E2->hits(path => '^/owa/$'), 3, "$name: 3 requests reached EXCH2";
        note "$name: " . join ', ', map {
            sprintf '%s from %s in %.2fs (first byte after %s)', $_->{outcome},
                $_->{server}, $_->{elapsed},
                defined $_->{first_byte} ? sprintf('%.2fs', $_->{first_byte}) : '-'
        } @r;
        $c{check}->($ng, @r);

        farm_serves($ng, $name);
        status_ok($ng, $name);
        diag log_tail($ng) unless Test::More->builder->is_passing;
        $ng->stop;
    };
}

{
    my $ok = wire('owa-signed-in');
    my $h = head_len($ok);

    trickle_case(name => 'header trickled, 1 byte every 0.5 s',
        route => { raw => $ok, trickle => [1, 0.5] },
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{outcome}/" . ($_->{server} =~ s/EXCH[13]/other/r) } @r),
               '200/other 200/other 200/other',
               'retried after nginx timed out: 200 from another server';
            ok !grep({ $_->{elapsed} < 1.8 || $_->{elapsed} > 3.5 } @r),
                'after proxy_read_timeout (2s), not later';
            is scalar($ng->grep_error_log(qr/upstream timed out .* while reading response header/)),
                3, 'nginx: upstream timed out while reading the header, 3 times';
            is join(' ', ejections($ng)), 'EXCH2:upstream-timeout',
                'EXCH2 ejected by rule upstream-timeout';
        });

    # The header at once, then the body 1 byte every 0.5 s, for longer
    # than the client waits.  The hold ends at the first byte after
    # 500 ms.  With proxy_buffering off the header then goes to the
    # client with the first bytes; with buffering on (the default) nginx
    # keeps the header until a buffer's worth of body (postpone_output)
    # or its end: the client waits for the server, as without the module,
    # and no nginx timeout ends it (every byte comes within 2s).
    my $body_trickle = { raw => $ok, split => [ map { $h + $_ } 0 .. 200 ],
                         split_pause => 0.5 };
    trickle_case(name => 'HTML body trickled, 1 byte every 0.5 s, proxy_buffering off',
        location => "exchange_health_hold 4k 500ms;\n        proxy_buffering off;",
        route => $body_trickle, timeout => 4,
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{status}/$_->{server}" } @r),
               '200/EXCH2 200/EXCH2 200/EXCH2', "EXCH2's header reaches the client";
            ok !grep({ !defined $_->{first_byte} || $_->{first_byte} > 1.5 } @r),
                'within the hold time (500 ms) and the next byte';
            is scalar($ng->grep_error_log(qr/upstream timed out/)), 0,
                'nginx never timed out: every byte came within 2s';
            is join(' ', ejections($ng)), '', 'nobody ejected';
        });
    trickle_case(name => 'HTML body trickled, 1 byte every 0.5 s, proxy_buffering on',
        location => 'exchange_health_hold 4k 500ms;',
        route => $body_trickle, timeout => 4,
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { $_->{outcome} } @r), join(' ', ('none (timeout)') x 3),
               'the clients wait for the server (nginx buffers the header)';
            my @gone;
            wait_until(sub { (@gone = $ng->grep_error_log(
                qr/client prematurely closed connection/)) >= 3 }, timeout => 5);
            is scalar(@gone), 3, 'nginx saw the clients go';
            is scalar(grep { /while reading upstream/ } @gone), 3,
                'while reading the body: the hold had ended';
            is scalar($ng->grep_error_log(qr/upstream timed out/)), 0,
                'nginx never timed out: every byte came within 2s';
            is join(' ', ejections($ng)), '', 'nobody ejected';
        });

    # The header and 50 bytes of body, then nothing: the module holds the
    # header for the hold time only, then nginx reads the body until
    # proxy_read_timeout: the page is cut, too late to send it elsewhere,
    # and the stall is still the server's failure.  proxy_buffering off,
    # so that the header reaches the client when nginx passes it on.
    trickle_case(name => 'HTML body stalls while the header is held',
        location => "exchange_health_hold 4k 500ms;\n        proxy_buffering off;",
        route => { raw => substr($ok, 0, $h + 50) },
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{outcome}/$_->{server}" } @r),
               join(' ', ('200 (body truncated)/EXCH2') x 3),
               'EXCH2\'s header goes on, its body cut when nginx timed out';
            ok !grep({ !defined $_->{first_byte} || $_->{first_byte} > 1.5 } @r),
                'the header after the hold time (500 ms), not at the timeout';
            ok !grep({ $_->{elapsed} < 1.8 || $_->{elapsed} > 3.5 } @r),
                'cut after proxy_read_timeout (2s)';
            is join(' ', ejections($ng)), 'EXCH2:upstream-timeout',
                'EXCH2 ejected by rule upstream-timeout all the same';
        });
}

# A chunked body that keeps coming for longer than the client waits.
{
    my $head = response(add => [['Transfer-Encoding', 'chunked']], body => '');
    my $body = join '', map { my $d = "<p>row $_</p>"; sprintf("%x\r\n%s\r\n", length $d, $d) } 1 .. 400;
    trickle_case(name => 'chunks trickled for longer than the client waits',
        route => { raw => $head . $body . "0\r\n\r\n", trickle => [20, 0.1] },
        timeout => 4,
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{status}/$_->{server}" } @r),
               '200/EXCH2 200/EXCH2 200/EXCH2', "EXCH2's header reaches the client";
            ok !grep({ !defined $_->{first_byte} || $_->{first_byte} > 2.5 } @r),
                'within 2.5s, though the body never ends';
            is join(' ', ejections($ng)), '', 'nobody ejected';
        });
}

done_testing;
