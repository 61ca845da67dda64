package EH::Status;

# Readers for the module's status page in tests: a strict parser of the
# Prometheus text exposition format (0.0.4), and promtool when installed.
#
#   my $m = EH::Status::parse_prometheus($text);
#   $m->{error};                       # undef when it parses
#   $m->{samples}{'name{a="b",c="d"}'};   # value, labels as written
#   my ($ok, $out) = EH::Status::promtool_check($text) if EH::Status::promtool();

use strict;
use warnings;

use File::Temp qw(tempfile);
use POSIX ();

my $NAME  = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $LABEL = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
my $VALUE = qr/"(?:[^"\\\n]|\\[\\"n])*"/;
my $FLOAT = qr/[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|Inf|NaN)/;

sub parse_prometheus {
    my ($text) = @_;
    my (%type, %help, %samples, %seen_metric);
    my $n = 0;
    my $err = sub { return { error => "line $n: $_[0]", samples => \%samples } };

    return $err->('does not end with a newline') if length $text && $text !~ /\n\z/;

    for my $line (split /\n/, $text) {
        $n++;
        next if $line eq '';
        if ($line =~ /^# (HELP|TYPE) ($NAME) ?(.*)$/) {
            my ($what, $name, $rest) = ($1, $2, $3);
            if ($what eq 'TYPE') {
                return $err->("second TYPE for $name") if $type{$name};
                return $err->("TYPE after samples of $name") if $seen_metric{$name};
                return $err->("bad type '$rest'")
                    unless $rest =~ /^(counter|gauge|histogram|summary|untyped)$/;
                $type{$name} = $rest;
            } else {
                return $err->("second HELP for $name") if defined $help{$name};
                return $err->('bad escape in HELP') if $rest =~ /\\(?![\\n])/;
                $help{$name} = $rest;
            }
            next;
        }
        next if $line =~ /^#/;

        $line =~ /^($NAME)(\{(.*)\})? ($FLOAT)(?: (-?\d+))?$/
            or return $err->("not a sample: $line");
        my ($name, $labels, $value) = ($1, $3 // '', $4);

        my $rest = $labels;
        my %l;
        while (length $rest) {
            $rest =~ s/^($LABEL)=($VALUE)(,|$)// or return $err->("bad labels: {$labels}");
            return $err->("label $1 twice") if exists $l{$1};
            $l{$1} = $2;
            return $err->("trailing comma: {$labels}") if $3 eq ',' && !length $rest;
        }

        my $key = $name . (length $labels ? "{$labels}" : '');
        return $err->("duplicate series $key") if exists $samples{$key};
        $samples{$key} = $value;

        (my $family = $name) =~ s/_(?:bucket|sum|count)$//;
        $seen_metric{$name} = $seen_metric{$family} = 1;
    }

    return { samples => \%samples, types => \%type, help => \%help };
}

sub promtool {
    for my $p (split /:/, $ENV{PATH} // '') {
        return "$p/promtool" if -x "$p/promtool";
    }
    return undef;
}

sub promtool_check {
    my ($text) = @_;
    my ($fh, $file) = tempfile(UNLINK => 1);
    print $fh $text;
    close $fh;
    my $tool = promtool() or return (0, 'no promtool');
    my $out = `$tool check metrics < $file 2>&1`;
    return ($? == 0, $out);
}

1;

# A page that loads PATH (same origin) in a frame as wide as the number
# after "?" in its own address, then measures every element of it:
# <pre id="result">width=W elements=N page=P overflow=K</pre>, P the
# page's scroll width, K the elements that reach past the page's right
# edge or whose content is wider than their box, each listed after it.
# The status page needs no script; this test page is the browser's ruler.
sub measure_page {
    my ($path) = @_;
    return <<"HTML";
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>measure</title></head>
<body style="margin:0">
<iframe id="f" style="border:0;height:2000px" onload="measure()"></iframe>
<pre id="result">not measured</pre>
<script>
var width = parseInt(location.search.substring(1), 10) || 390;
var f = document.getElementById('f');
f.style.width = width + 'px';
f.src = '$path';
function measure() {
    var d = f.contentDocument, all = d.body.querySelectorAll('*'), bad = [];
    var page = d.documentElement.scrollWidth;
    for (var i = 0; i < all.length; i++) {
        var e = all[i], r = e.getBoundingClientRect();
        var name = e.tagName + '.' + (e.getAttribute('class') || '');
        if (r.width == 0 && r.height == 0) continue;
        if (r.right > width + 0.5 || r.left < -0.5) {
            bad.push(name + ' right=' + r.right);
        } else if (e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1) {
            bad.push(name + ' scroll=' + e.scrollWidth + '>' + e.clientWidth);
        }
    }
    document.getElementById('result').textContent = 'width=' + width
        + ' elements=' + all.length + ' page=' + page
        + ' overflow=' + bad.length + (bad.length ? '\\n' + bad.join('\\n') : '');
}
</script>
</body></html>
HTML
}

# Headless Chromium (Debian's chromium) on a page: the DOM after
# rendering, or a screenshot.  Flags keep it off the network.
#   my $dom = EH::Status::chromium(url => $url, dump_dom => 1);
#   EH::Status::chromium(url => $url, screenshot => $png, size => '1200,900');
sub chromium_path {
    for my $c ('/usr/bin/chromium', '/usr/bin/chromium-browser') {
        return $c if -x $c;
    }
    return undef;
}

sub chromium {
    my (%o) = @_;
    my $bin = chromium_path() or return undef;
    my $profile = File::Temp::tempdir(CLEANUP => 1);
    my @cmd = ($bin, '--headless', '--no-sandbox', '--disable-gpu',
               '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
               '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--hide-scrollbars',
               "--user-data-dir=$profile",
               '--window-size=' . ($o{size} // '1200,900'));
    push @cmd, '--dump-dom' if $o{dump_dom};
    push @cmd, "--screenshot=$o{screenshot}" if $o{screenshot};
    push @cmd, $o{url};

    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}
