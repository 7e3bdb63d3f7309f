// Types for parse-prometheus-text-format (it ships none): the parsed exposition, one entry per
// metric family, sample values kept as the text Prometheus wrote ("1", "+Inf", "NaN").
declare module "parse-prometheus-text-format" {
  export interface ParsedSample {
    value?: string;
    labels?: Record<string, string>;
  }
  export interface ParsedFamily {
    name: string;
    help: string;
    type: string;
    metrics: ParsedSample[];
  }
  export default function parsePrometheusTextFormat(text: string): ParsedFamily[];
}
